# scalr-email inbox as a container, in place of mailhog/mailhog:
#   docker build -t scalr-email-inbox .
#   docker run -p 1025:1025 -p 8025:8025 scalr-email-inbox
# Debian slim, the binary and the libraries it links only, an unprivileged
# user, a healthcheck on the web port.  Options: docker/entrypoint.sh.
FROM debian:12-slim AS build
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends \
        gcc make pkg-config libc6-dev libssl-dev libidn2-dev libsqlite3-dev libpq-dev \
        libmicrohttpd-dev libjansson-dev libcurl4-openssl-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Makefile scalr-email.pc.in ./
COPY include include
COPY src src
COPY cli cli
COPY inbox inbox
RUN make -j"$(nproc)" build/scalr-email && strip build/scalr-email

FROM debian:12-slim
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends \
        libssl3 libidn2-0 libsqlite3-0 libpq5 libmicrohttpd12 libjansson4 libcurl4 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10025 --home-dir /data --create-home --shell /usr/sbin/nologin inbox
COPY --from=build /src/build/scalr-email /usr/local/bin/scalr-email
COPY docker/entrypoint.sh /entrypoint.sh
USER inbox
WORKDIR /data
EXPOSE 1025 8025
HEALTHCHECK --interval=10s --timeout=6s --start-period=2s --retries=3 CMD ["/entrypoint.sh", "health"]
ENTRYPOINT ["/entrypoint.sh"]
