# The `sigil` CLI for the replication Job (deploy/k8s/replicate-job.yaml), built WITHOUT the
# `sim` feature, so it never accepts simulated evidence.
#
#   cargo build --release --locked -p sigil --bin sigil
#   docker build -f deploy/k8s/images/cli.Dockerfile -t REGISTRY/sigil-cli:TAG target/release
#
# REPLACE the digest: docker buildx imagetools inspect gcr.io/distroless/cc-debian12:nonroot
FROM gcr.io/distroless/cc-debian12:nonroot@sha256:REPLACE-WITH-DIGEST
COPY sigil /usr/local/bin/sigil
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/sigil"]
