#!/bin/bash
# A planted file gets the times of a system binary.
# expect: sensor.defense_evasion.timestomp T1070.006
. "$(dirname "$0")/lib.sh"
touch "$SCN_DIR/backdoor"
touch -r /bin/ls "$SCN_DIR/backdoor"
