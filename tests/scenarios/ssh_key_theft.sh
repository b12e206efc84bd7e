#!/bin/bash
# A private key in root's ~/.ssh is read by cat (a stand-in key, removed afterwards).
# expect: sensor.credential_access.ssh_key_read T1552.004
. "$(dirname "$0")/lib.sh"
mkdir -p -m 700 /root/.ssh
key=/root/.ssh/id_sensor_scenario
trap 'rm -f "$key"' EXIT
printf -- '-----BEGIN OPENSSH PRIVATE KEY-----\nnot a key\n-----END OPENSSH PRIVATE KEY-----\n' > "$key"
sleep 0.2
cat "$key" > /dev/null
