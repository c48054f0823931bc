# image-migrator: multi-stage build on pinned Debian bookworm images.
# Build: buildah bud -t image-migrator:0.1.0 .   (or docker build; see scripts/container-build)

# ---- build stage: compilers and -dev packages, never shipped ----
FROM docker.io/library/debian:bookworm-20241111 AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      cmake g++ make pkg-config ca-certificates \
      libcurl4-openssl-dev libssl-dev nlohmann-json3-dev libyaml-cpp-dev libcxxopts-dev libspdlog-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Sources change more often than the toolchain: copy them after the packages for layer caching.
COPY CMakeLists.txt ./
COPY http/ http/
COPY registry/ registry/
COPY kube/ kube/
COPY migrate/ migrate/
COPY cmd/ cmd/
COPY packaging/ packaging/
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF \
 && cmake --build /build -j"$(nproc)" --target image-migrator \
 && strip /build/image-migrator

# ---- runtime stage: only the shared libraries the binary links ----
FROM docker.io/library/debian:bookworm-20241111-slim
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="image-migrator" \
      org.opencontainers.image.description="Copies container images between registries, digests unchanged; finds the images a Kubernetes cluster uses" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="docker.io/library/debian:bookworm-20241111-slim"
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      ca-certificates libcurl4 libssl3 libyaml-cpp0.7 libspdlog1.10 libfmt9 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 65532 migrator \
 && useradd --system --uid 65532 --gid 65532 --no-create-home --home-dir /work --shell /usr/sbin/nologin migrator
COPY --from=build /build/image-migrator /usr/local/bin/image-migrator
WORKDIR /work
USER 65532:65532
ENTRYPOINT ["image-migrator"]
CMD ["--help"]
