# The alustan agent image: `docker build -t ghcr.io/alustan/alustan-agent:0.1.0 .`
#
# Not built in this repository's CI: its machines have no container runtime. Kept minimal so it
# is easy to review; the chart (charts/alustan) runs it as UID 65532 with a read-only root.
#
# Final stage: distroless cc (glibc, CA certificates, /etc/passwd with `nonroot`, no shell).
# Not static musl on scratch because the agent verifies registry and API server TLS against the
# system CA store (rustls-native-certs / rustls-platform-verifier read /etc/ssl/certs), which
# scratch lacks, and a glibc build on bookworm runs as is on Debian 12's glibc.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
# The lockfile pins every dependency; only the agent is built.
RUN cargo build --release --locked -p alustan-agent \
 && cp target/release/alustan-agent /alustan-agent

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /alustan-agent /usr/local/bin/alustan-agent
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/alustan-agent"]
