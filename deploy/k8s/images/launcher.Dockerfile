# The `enclave` and vsock-proxy containers of deploy/k8s/statefulset.yaml: nitro-cli,
# vsock-proxy and the EIF. Not measured (the EIF inside it is); pin the base by digest.
#
#   mkdir ctx && cp sigil.eif deploy/nitro/sigil-enclave-supervise.sh ctx/
#   docker build -f deploy/k8s/images/launcher.Dockerfile -t REGISTRY/sigil-enclave-launcher:TAG ctx
#
# REPLACE the digest: docker buildx imagetools inspect public.ecr.aws/amazonlinux/amazonlinux:2023
FROM public.ecr.aws/amazonlinux/amazonlinux:2023@sha256:REPLACE-WITH-DIGEST
RUN dnf install -y aws-nitro-enclaves-cli python3 && dnf clean all
COPY sigil.eif /opt/sigil/sigil.eif
COPY sigil-enclave-supervise.sh /opt/sigil/sigil-enclave-supervise.sh
