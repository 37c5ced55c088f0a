# The `host` container of deploy/k8s/statefulset.yaml: sigil-host on distroless (glibc 2.36,
# as Debian 12, where it is built). Not measured; pin the base by digest.
#
#   cargo build --release --locked -p sigil-host --bin sigil-host
#   docker build -f deploy/k8s/images/host.Dockerfile -t REGISTRY/sigil-host:TAG target/release
#
# REPLACE the digest: docker buildx imagetools inspect gcr.io/distroless/cc-debian12:nonroot
FROM gcr.io/distroless/cc-debian12:nonroot@sha256:REPLACE-WITH-DIGEST
COPY sigil-host /usr/local/bin/sigil-host
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/sigil-host"]
