#!/bin/bash
# Shell history is disabled and cleared.
# expect: sensor.defense_evasion.history_tampering T1070.003
. "$(dirname "$0")/lib.sh"
bash -c 'unset HISTFILE; history -c'
