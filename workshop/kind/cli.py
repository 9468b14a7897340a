"""Lab 05 part 2 on a local Kubernetes cluster (kind): up, build, deploy, rollout, down, prefetch."""

from __future__ import annotations

import shutil
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.console import Console

from workshop.errors import WorkshopError
from workshop.kind import apply, cluster, images

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
console = Console()
errors = Console(stderr=True, soft_wrap=True)
LAB = "05"
SOLUTION_OPT = typer.Option(False, "--solution", help="deploy the reference solution instead of your files")


def say(line: str) -> None:
    console.print(line, markup=False, highlight=False)


@app.callback()
def needs_the_kind_group() -> None:
    """Lab 05 part 2's packages are an optional group: installed here on first use."""
    from workshop.extras import ensure

    ensure("kind", say)


@contextmanager
def exits():
    """The Kubernetes and Docker clients' own errors become the workshop's (one line, exit
    1); the workshop's own (a missing tool, a malformed file: exit 2) pass through to the
    one handler of the command line."""
    from kubernetes.client.exceptions import ApiException

    try:
        yield
    except ApiException as exc:
        raise WorkshopError(f"the Kubernetes API answered {exc.status} {exc.reason}{api_message(exc)}") from None
    except Exception as exc:
        import docker

        if isinstance(exc, docker.errors.DockerException):
            raise WorkshopError(f"docker: {str(exc)[:300]}") from None
        raise


def api_message(exc) -> str:
    """The API server's own words (a Status object's message), if it sent some."""
    import json

    try:
        return ": " + json.loads(exc.body)["message"]
    except (TypeError, ValueError, KeyError):
        return ""


def files_dir(solution: bool) -> Path:
    from workshop.curriculum import find_lab
    from workshop.layers import lab_files_dir

    return lab_files_dir(find_lab(LAB), "solution" if solution else "learner")


def push_local_images(client) -> None:
    """`kind load` every image the lab needs that this machine's Docker has (an offline kit
    loaded with `prefetch --load`), so the nodes do not pull them."""
    node_images = set(images.images_in_kind_config(cluster.CONFIG)) if cluster.CONFIG.is_file() else set()
    for image in images.required_images():
        if image in node_images:
            continue
        name = images.local_name(image)
        if images.present(client, name):
            say(f"loading {name} into the nodes")
            cluster.load_image(name)


def offline_node_image(client) -> str | None:
    """The node image by name:tag when only that is here: `docker load` of the offline kit may
    not keep the digest kind-config.yaml pins, and kind would then try to pull."""
    if not cluster.CONFIG.is_file():
        return None
    pinned = set(images.images_in_kind_config(cluster.CONFIG))
    if len(pinned) != 1:
        return None
    image = pinned.pop()
    local = images.local_name(image)
    if local == image or images.present(client, image) or not images.present(client, local):
        return None
    return local


@app.command()
def up() -> None:
    """Create the kind cluster `workshop` from kind-config.yaml (nothing to do if it exists)."""
    with exits():
        client = cluster.preflight()
        node_image = offline_node_image(client)
        if node_image:
            say(f"using the local {node_image} (loaded from the offline kit, without its digest)")
        if cluster.up(node_image=node_image):
            push_local_images(client)
            console.print(f"cluster [bold]{cluster.CLUSTER_NAME}[/bold] created")
        else:
            console.print(f"cluster [bold]{cluster.CLUSTER_NAME}[/bold] already exists")


@app.command()
def build() -> None:
    """Build the Dockerfile as cms:workshop and load it into the cluster's nodes."""
    with exits():
        client = cluster.preflight()
        images.build(client, say)
        if cluster.exists():
            cluster.load_image(images.IMAGE)
            console.print(f"{images.IMAGE} built and loaded into the cluster")
        else:
            console.print(f"{images.IMAGE} built; `workshop kind up`, then `workshop kind build` loads it")


@app.command()
def deploy(
    solution: bool = SOLUTION_OPT,
    allow_broken: bool = typer.Option(
        False, "--allow-broken", help="deploy a web Deployment that breaks a rollout rule (to watch it fail)"
    ),
) -> None:
    """Apply k8s/*.yaml, wait for the migrations Job, then the lab's web Deployment and its ConfigMaps."""
    with exits():
        cluster.preflight(docker=False)
        api = cluster.connect()
        try:  # reads every file, and checks the rollout rules, before it applies any
            apply.deploy(api, files_dir(solution), say, allow_broken=allow_broken)
        finally:
            api.close()
        console.print(f"deployed; the site is on {_url()}")


def _url() -> str:
    return cluster.app_url()


@app.command()
def rollout(
    solution: bool = SOLUTION_OPT,
    rate: float = typer.Option(120.0, "--rate", min=1, max=400, help="requests per second through the port mapping"),
    rollouts: int = typer.Option(1, "--rollouts", min=1, max=5, help="rolling updates, one after the other"),
    json_out: Path = typer.Option(None, "--json", help="write every request and pod event here"),
) -> None:
    """Roll the web Deployment under load (as `kubectl rollout restart`); exit 1 if any request failed."""
    from workshop.kind.rollout import run_rollouts
    from workshop.processes import raise_keyboard_interrupt_on_sigterm
    from workshop.rollout.load import LoadShape
    from workshop.rollout.report import report_rollouts

    with exits():
        cluster.preflight(docker=False)
        folder = files_dir(solution)
        web = apply.web_objects(folder)
        api = cluster.connect()
        raise_keyboard_interrupt_on_sigterm()
        try:
            apply.apply(api.dynamic, web, say)  # your current files, then wait for them to run
            apply.wait_for_deployments(api)
            with console.status(f"{rollouts} rolling update(s) under {rate:g} requests/s..."):
                timeline = run_rollouts(api, LoadShape(rate=rate), _url(), rollouts=rollouts)
        except KeyboardInterrupt:
            console.print("stopping...")
            raise
        finally:
            api.close()
    raise typer.Exit(report_rollouts(timeline, console, json_out, pod_events=True))


@app.command()
def down() -> None:
    """Delete the kind cluster `workshop`."""
    with exits():
        cluster.require("kind")
        if cluster.down():
            console.print(f"cluster {cluster.CLUSTER_NAME} deleted")
        else:
            console.print(f"there is no cluster {cluster.CLUSTER_NAME}; nothing to do")


@app.command()
def prefetch(
    output: Path = typer.Option(images.DEFAULT_ARCHIVE, "--output", help="the archive to write"),
    load: Path = typer.Option(None, "--load", help="load an archive made by prefetch (no internet needed)"),
) -> None:
    """Pull every image the lab needs into one archive, or `--load` one on a machine without internet."""
    with exits():
        if load is not None:
            if not load.is_file():
                raise cluster.BadInput(f"{load} is not a file")
            client = cluster.preflight(kind=False)
            images.load_archive(client, load, say)
            if shutil.which("kind") and cluster.exists():
                push_local_images(client)
            console.print(f"loaded {load}; `workshop kind up` now needs no internet")
            return
        client = cluster.preflight(kind=False)
        wanted = images.required_images()
        images.pull_all(client, wanted, say)
        size = images.save_archive(client, wanted, output)
        console.print(f"{len(wanted)} images saved to {output} ({size / 1e6:.0f} MB)")
