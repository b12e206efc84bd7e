#!/bin/bash
# An SSH key is appended to an authorized_keys file (of a scratch home directory).
# expect: sensor.persistence.authorized_keys T1098.004
. "$(dirname "$0")/lib.sh"
mkdir -p -m 700 "$SCN_DIR/home/.ssh"
echo "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIScenarioOnlyKey attacker" >> "$SCN_DIR/home/.ssh/authorized_keys"
