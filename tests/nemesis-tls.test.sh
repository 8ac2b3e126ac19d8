#!/bin/bash
# nemesis-tls.test.sh - the real-cluster nemesis (tests/nemesis.test.sh) once with TLS on every
# connection (tests/lib/cluster.sh, CLUSTER_TLS=1): kill -9, partitions and restarts while the
# peers and the clerk speak TLS, for NEMESIS_SECONDS (30 here: the plaintext run is the long one).
cd "$(dirname "$0")/.." || exit 1
CLUSTER_TLS=1 NEMESIS_SECONDS=${NEMESIS_SECONDS:-30} exec tests/nemesis.test.sh
