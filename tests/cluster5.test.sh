#!/bin/bash
# cluster5.test.sh - the process-level cluster test with 5 nodes on 127.0.0.1-5.
cd "$(dirname "$0")/.." || exit 1
NODES=5 exec tests/cluster.test.sh
