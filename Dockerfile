# One image for every patchtwin container: `init` and the five services
# (compose.yaml picks the command: `init` or `service NAME`).
#
# Built on the local Debian base (`patchtwin images` or scripts/bootstrap.sh make it), so no
# registry is needed: Debian 12's Python is 3.11, the version patchtwin targets; the Debian
# mirror and PyPI must be reachable from the build. Behind a TLS-inspecting proxy, pass its CA
# (PEM text) as a build argument: --build-arg EXTRA_CA_CERTS="$(cat proxy-ca.crt)".
FROM patchtwin/debian:12
ARG EXTRA_CA_CERTS=""

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATCHTWIN_STATE_DIR=/var/lib/patchtwin \
    VIRTUAL_ENV=/opt/patchtwin \
    PATH=/opt/patchtwin/bin:$PATH \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt

RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && if [ -n "$EXTRA_CA_CERTS" ]; then \
        printf '%s\n' "$EXTRA_CA_CERTS" >/usr/local/share/ca-certificates/extra.crt && update-ca-certificates; \
    fi \
 && python3 -m venv /opt/patchtwin

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

# Every service serves HTTP here, /healthz included (compose sets PATCHTWIN_HTTP_PORT=8080).
EXPOSE 8080

ENTRYPOINT ["patchtwin"]
CMD ["--help"]
