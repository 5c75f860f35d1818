# newage in a container (README, "More than one process"; deploy/compose.yaml
# runs two of them behind HAProxy). Build from the repository's root:
#   docker build -t newage .
#   docker run -p 4000:4000 -v newage-data:/data newage

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml requirements.lock README.md LICENSE ./
COPY src ./src
# src/newage/extension is a link to it: the extension ships in the package
COPY extension ./extension
# requirements.lock as constraints: exactly the versions the suite passed with
RUN python -m venv /opt/newage \
 && /opt/newage/bin/pip install -c requirements.lock .

FROM python:3.11-slim
ENV PATH=/opt/newage/bin:$PATH PYTHONUNBUFFERED=1
COPY --from=build /opt/newage /opt/newage
RUN useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin newage \
 && mkdir /data && chown newage:newage /data
USER newage
# settings, trust files, logs, files/ and (without databaseUrl) the SQLite database
VOLUME /data
EXPOSE 4000
# 200 only while the store (and Redis, when set) answer; urlopen raises on 503
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:4000/readyz', timeout=2)"]
# 0.0.0.0: reachable from the host and the proxy. networkSafe stays on, so
# sensitive operations still need an admin on loopback (docker exec).
CMD ["newage", "serve", "--host", "0.0.0.0", "--port", "4000", "--data-dir", "/data"]
