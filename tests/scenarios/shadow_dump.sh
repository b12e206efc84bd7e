#!/bin/bash
# The password hashes are read and a copy is staged.
# expect: sensor.credential_access.shadow_read T1003.008
# expect: sensor.credential_access.secrets_copied T1003.008
. "$(dirname "$0")/lib.sh"
mkdir -p "$SCN_DIR/.loot"
cat /etc/shadow > /dev/null
cp /etc/shadow "$SCN_DIR/.loot/shadow"
