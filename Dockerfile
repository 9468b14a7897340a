# The cms image of lab 05, part 2 (`workshop kind build` tags it cms:workshop).
# One image for every process type: uWSGI (web), Celery worker and beat, the migrations
# Job and the CRM stand-in; each Kubernetes manifest picks its command.
#
# What it holds: cms/, and the reference solutions of labs 01-04 that cms loads as
# modules and settings layers (the same layers workshop/layers.py puts on PYTHONPATH for
# lab 05), and the CRM stand-in (workshop/crm_server.py, standard library only).
#
# It runs as a numeric non-root user and writes nothing to its root filesystem, so the
# pods can set runAsNonRoot and readOnlyRootFilesystem: bytecode is compiled at build
# time, HOME and temporary files live under /tmp (an emptyDir volume in the pods).
FROM python:3.11.15-slim-bookworm

# Runtime packages only (requirements-image.lock: django, celery, pyuwsgi, ...), at the
# versions of requirements.lock, checked against their hashes, as wheels (no compiler).
# They go into the system site-packages, not a virtualenv: uWSGI re-executes the same
# /usr/local/bin/python on a reload, so `binary-path` is not needed (uwsgi issue 2478).
COPY requirements-image.lock /tmp/requirements-image.lock
RUN pip install --no-cache-dir --no-deps --require-hashes --only-binary=:all: --root-user-action=ignore \
        -r /tmp/requirements-image.lock \
    && rm /tmp/requirements-image.lock

WORKDIR /app
COPY cms/ /app/cms/
COPY solutions/01-stateful/*.py /app/solutions/01-stateful/
COPY solutions/02-sessions/*.py /app/solutions/02-sessions/
COPY solutions/03-celery-leaks/*.py /app/solutions/03-celery-leaks/
COPY solutions/04-beat/*.py /app/solutions/04-beat/
COPY workshop/__init__.py workshop/crm_server.py /app/workshop/

# Every .pyc now (the base image ships none for the standard library; pip compiled the
# packages it installed): at run time the root filesystem is read-only, and
# PYTHONDONTWRITEBYTECODE stops Python from trying. The user 10001 gets a name, for
# libraries that look the current user up.
RUN python -m compileall -q -j 0 -x /site-packages/ /usr/local/lib/python3.11 /app \
    && useradd --uid 10001 --user-group --no-create-home --home-dir /tmp --shell /usr/sbin/nologin cms

# PYTHONPATH: the lab layers newest first, then /app (as workshop/layers.py orders them);
# CMS_SETTINGS_LAYERS: the settings modules of labs 02-04 (lab.toml's `settings`).
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TMPDIR=/tmp \
    DJANGO_SETTINGS_MODULE=cms.settings \
    PYTHONPATH=/app/solutions/04-beat:/app/solutions/03-celery-leaks:/app/solutions/02-sessions:/app/solutions/01-stateful:/app \
    CMS_SETTINGS_LAYERS=session_settings,celery_settings,beat_settings \
    CMS_DATA_DIR=/tmp/cms

USER 10001:10001
EXPOSE 8000

# uWSGI (pyuwsgi's `uwsgi` script); the web Deployment runs it with the lab's uwsgi.ini.
CMD ["uwsgi", "--master", "--processes", "2", "--threads", "8", "--module", "cms.wsgi:application", "--need-app", "--http-socket", ":8000", "--hook-master-start", "unix_signal:15 gracefully_kill_them_all"]
