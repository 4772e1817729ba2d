# One image for every patchtwin container: `init` and the five services
# (compose.yaml picks the command: `init` or `service NAME`).
#
# python:3.11-slim comes from Docker Hub; a machine without a registry cannot
# pull it, so `docker-compose build` only works where Docker Hub is reachable
# (or the base has been loaded with `docker load` beforehand).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATCHTWIN_STATE_DIR=/var/lib/patchtwin

# Unprivileged user for everything that does not hold the Docker socket
# (analyzer, init). provisioner, executor, prober and janitor are switched to
# root in compose.yaml: the mounted socket's group id varies by host, and
# access to the socket is root-equivalent on the host in any case.
RUN useradd --system --uid 10001 --user-group --create-home \
        --home-dir /var/lib/patchtwin --shell /usr/sbin/nologin patchtwin

WORKDIR /src
# README.md is the package's `readme` in pyproject.toml, so the build needs it.
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY patchtwin ./patchtwin
COPY services ./services
# A regular (non-editable) install, then drop the sources: the image runs the
# installed package only.
RUN pip install . && rm -rf /src

WORKDIR /var/lib/patchtwin
USER patchtwin

# Every service serves HTTP here, /healthz included.
EXPOSE 8080

ENTRYPOINT ["patchtwin"]
CMD ["--help"]
