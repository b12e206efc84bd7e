#!/bin/bash
# An encoded command is decoded and run by a shell.
# expect: sensor.defense_evasion.decode_execute T1140
. "$(dirname "$0")/lib.sh"
bash -c 'echo aWQgPiAvZGV2L251bGw= | base64 -d | sh'
