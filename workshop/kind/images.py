"""Images: build cms:workshop, list every image the lab needs, save them for a room without internet.

The build streams the Docker engine's log as it goes (the SDK's low-level `api.build`
with `decode=True`; `images.build` only returns the log once the build has finished).
"""

from __future__ import annotations

import platform
import re
from collections.abc import Callable, Iterable
from pathlib import Path

import yaml

from workshop.errors import WorkshopError
from workshop.kind.cluster import BadInput
from workshop.paths import ROOT

IMAGE = "cms:workshop"
DOCKERFILE = ROOT / "Dockerfile"
MANIFESTS = ROOT / "k8s"
DEFAULT_ARCHIVE = ROOT / ".workshop" / "kind-images.tar"
LAB_DEPLOYMENTS = (
    ROOT / "labs" / "05-uwsgi-rollouts" / "k8s" / "deployment.yaml",
    ROOT / "solutions" / "05-uwsgi-rollouts" / "k8s" / "deployment.yaml",
)


class BuildFailed(WorkshopError, RuntimeError):
    pass


# -- which images -------------------------------------------------------------------------------
def images_in_kind_config(path: Path) -> list[str]:
    config = yaml.safe_load(Path(path).read_text()) or {}
    return [node["image"] for node in config.get("nodes") or [] if isinstance(node, dict) and node.get("image")]


def images_in_dockerfile(path: Path) -> list[str]:
    """The images of the `FROM` lines, not earlier stages (`FROM build`) nor `scratch`."""
    found, stages = [], set()
    for line in Path(path).read_text().splitlines():
        match = re.match(r"\s*FROM\s+(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?", line, re.IGNORECASE)
        if not match:
            continue
        image, stage = match.group(1), match.group(2)
        if image.lower() != "scratch" and image not in stages and "$" not in image:
            found.append(image)
        if stage:
            stages.add(stage)
    return found


def images_in_manifests(paths: Iterable[Path]) -> list[str]:
    """Every `image:` of every container (init containers included) in these YAML files."""
    found = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "image" and isinstance(value, str):
                    found.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    for path in paths:
        for document in yaml.safe_load_all(Path(path).read_text()):
            walk(document)
    return found


def required_images(
    kind_config: Path = ROOT / "kind-config.yaml",
    dockerfile: Path = DOCKERFILE,
    manifests: Path = MANIFESTS,
    deployments: Iterable[Path] = LAB_DEPLOYMENTS,
) -> list[str]:
    """Every image lab 05 part 2 pulls, in a stable order, without the one it builds (cms:workshop).
    k8s/aws/ is not read: it never runs on kind."""
    for path in (kind_config, dockerfile, manifests, *deployments):
        if not Path(path).exists():
            raise BadInput(f"{path} is missing: the image list is read from it")
    images = images_in_kind_config(kind_config) + images_in_dockerfile(dockerfile)
    images += images_in_manifests([*sorted(Path(manifests).glob("*.yaml")), *deployments])
    unique = []
    for image in images:
        if image != IMAGE and image not in unique:
            unique.append(image)
    return unique


def pull_reference(image: str) -> str:
    """`name:tag@sha256:...` pulls by digest alone (the engine would read `name:tag` as the repository)."""
    if "@" in image:
        name, digest = image.split("@", 1)
        if ":" in name.rsplit("/", 1)[-1]:
            name = name.rsplit(":", 1)[0]
        return f"{name}@{digest}"
    return image if ":" in image.rsplit("/", 1)[-1] else f"{image}:latest"


def local_name(image: str) -> str:
    """The name an image has in the local engine: `name:tag` of a `name:tag@digest` (pull_all tags it)."""
    name = image.split("@", 1)[0]
    return name if "@" in image and ":" in name.rsplit("/", 1)[-1] else image


def present(client, image: str) -> bool:
    import docker

    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        return False
    return True


def host_platform() -> str:
    machine = platform.machine().lower()
    return "linux/" + {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(machine, machine)


# -- build ------------------------------------------------------------------------------------------
def build(client, say: Callable[[str], None], context: Path = ROOT, tag: str = IMAGE) -> None:
    """Build the Dockerfile at the repository root as `tag`, streaming the log through `say`."""
    if not (Path(context) / "Dockerfile").is_file():
        raise BuildFailed(f"there is no Dockerfile in {context}")
    for chunk in client.api.build(path=str(context), tag=tag, rm=True, decode=True):
        if "error" in chunk:
            raise BuildFailed(chunk.get("errorDetail", {}).get("message") or chunk["error"])
        text = chunk.get("stream") or chunk.get("status")
        if text and text.strip():
            say(text.rstrip())


# -- the offline kit ----------------------------------------------------------------------------------
def pull_all(client, images: list[str], say: Callable[[str], None]) -> None:
    """Pull each image for this machine's platform, then tag a digest-pinned one with its name:tag too."""
    for image in images:
        reference = pull_reference(image)
        say(f"pulling {reference} ({host_platform()})")
        pulled = client.images.pull(reference, platform=host_platform())
        name = image.split("@", 1)[0]
        if "@" in image and ":" in name.rsplit("/", 1)[-1]:
            repository, tag = name.rsplit(":", 1)
            pulled.tag(repository, tag)


def save_archive(client, images: list[str], output: Path) -> int:
    """`docker save IMAGES > output`: one archive, layers shared; returns its size in bytes.

    docker-py saves one image at a time; the engine's /images/get endpoint takes many names."""
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    names = [local_name(image) for image in images]
    api = client.api
    response = api._get(api._url("/images/get"), params={"names": names}, stream=True)
    api._raise_for_status(response)
    partial = output.with_suffix(output.suffix + ".partial")
    with open(partial, "wb") as handle:
        for chunk in response.iter_content(chunk_size=2 << 20):
            handle.write(chunk)
    partial.replace(output)
    return output.stat().st_size


def load_archive(client, archive: Path, say: Callable[[str], None]) -> None:
    """`docker load < archive`."""
    with open(archive, "rb") as handle:
        for chunk in client.api.load_image(handle):
            if "error" in chunk:
                raise BuildFailed(chunk.get("errorDetail", {}).get("message") or chunk["error"])
            if chunk.get("stream", "").strip():
                say(chunk["stream"].rstrip())
