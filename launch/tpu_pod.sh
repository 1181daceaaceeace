#!/usr/bin/env bash
# The same training command on every host of a Cloud TPU VM slice; JAX finds the other hosts itself.
#
#   TPU=my-v4-32 ZONE=us-central2-b WORKDIR=/mnt/shared/snip_10d launch/tpu_pod.sh [--config.key=value ...]
#
# CONFIG defaults to configs/tpu_pod_10d.py. WORKDIR must be a directory every host sees (NFS/Filestore or a
# gcsfuse-mounted bucket). REPO (default ~/snipjax) is where the repository is checked out and installed
# (`pip install -e '.[tpu]'`) on every host; see launch/README.md for copying it there.
set -euo pipefail
: "${TPU:?set TPU to the slice name}" "${ZONE:?set ZONE to its zone}" "${WORKDIR:?set WORKDIR to a shared directory}"
config=${CONFIG:-configs/tpu_pod_10d.py}
repo=${REPO:-'~/snipjax'}

gcloud compute tpus tpu-vm ssh "$TPU" --zone="$ZONE" --worker=all --command="cd $repo && \
  python3 -m snipjax.train --config $config --workdir $WORKDIR --detect_cluster $*"
