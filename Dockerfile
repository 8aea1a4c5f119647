# syntax=docker/dockerfile:1
# The abrstack image: one `abr` command for every service of a fleet (origin, shield, edges,
# steering, encoder service and workers, QoE aggregator) and `dask` for the Dask scheduler
# and workers. Build and push: README, "Running on Kubernetes". redis-server is not in it
# (the fleet's Redis runs from the official redis image).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG NODE_IMAGE=node:22-bookworm-slim

# hls.js and dash.js for the origin's player page, at the versions package-lock.json pins.
FROM ${NODE_IMAGE} AS js
WORKDIR /js
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund --loglevel=error

# The Python environment: the package and its dependencies (imageio-ffmpeg brings the static
# ffmpeg build with libx264, libx265, libvpx, libaom, libsvtav1 and libvmaf).
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY abrstack ./abrstack
COPY encoder ./encoder
COPY origin ./origin
COPY edge ./edge
COPY player_sim ./player_sim
COPY steer ./steer
COPY qoe ./qoe
RUN python -m venv /opt/abr \
 && /opt/abr/bin/pip install . \
 && ln -s "$(/opt/abr/bin/python -c 'import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())')" \
          /opt/abr/bin/ffmpeg \
 && /opt/abr/bin/ffmpeg -hide_banner -version

FROM ${PYTHON_IMAGE}
# A fixed non-root uid/gid: the pods' securityContext (runAsUser 10001) names the same ids.
RUN groupadd --system --gid 10001 abr \
 && useradd --system --uid 10001 --gid abr --home-dir /home/abr --create-home abr
COPY --from=build /opt/abr /opt/abr
COPY --from=js /js/node_modules /opt/abr/node_modules
# /cache: the edge's disk tier and certificate; /media: titles; /state: job records etc.
RUN mkdir -p /cache /media /state && chown abr:abr /cache /media /state
ENV PATH=/opt/abr/bin:$PATH \
    ABR_NODE_MODULES=/opt/abr/node_modules \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
WORKDIR /home/abr
# origin 8080, edge h1 8081, edge h2 (TLS) and h3 (QUIC) 8443, steering 8090, encoder 8070.
EXPOSE 8080 8081 8443/tcp 8443/udp 8090 8070
ENTRYPOINT ["abr"]
CMD ["--help"]
