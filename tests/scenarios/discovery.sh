#!/bin/bash
# A burst of reconnaissance right after getting in.
# expect: sensor.discovery.recon_burst T1082
# expect: sensor.discovery.suid_search T1083
. "$(dirname "$0")/lib.sh"
{ whoami; id; uname -a; ip addr; cat /etc/passwd; ss -tan; } > /dev/null 2>&1
find /usr/bin -perm -4000 -type f > /dev/null 2>&1
