#!/bin/bash
# A program started under the name of a kernel thread, from a temporary directory.
# expect: sensor.defense_evasion.masquerading T1036.004
. "$(dirname "$0")/lib.sh"
cp /bin/true "$SCN_DIR/kworker"
bash -c "exec -a '[kworker/0:9]' '$SCN_DIR/kworker'"
