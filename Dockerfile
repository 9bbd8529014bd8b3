# One image for every service (the binary is chosen by the container's command).
# Not built or run on the development machines (no Docker engine there); see deploy/README.md.
FROM debian:bookworm-slim AS build
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends \
        build-essential pkg-config libzmq3-dev libczmq-dev libprotobuf-c-dev protobuf-c-compiler \
        libcurl4-openssl-dev libhiredis-dev libcmocka-dev libjansson-dev libmicrohttpd-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN make all

FROM debian:bookworm-slim
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends \
        libzmq5 libczmq4 libprotobuf-c1 libcurl4 libhiredis0.14 libjansson4 libmicrohttpd12 \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/build/bin/ /usr/local/bin/
USER nobody
