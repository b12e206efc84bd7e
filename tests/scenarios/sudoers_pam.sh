#!/bin/bash
# A sudo rule and a PAM file are dropped in (comments only) and removed again.
# expect: sensor.privilege_escalation.sudoers T1548.003
# expect: sensor.persistence.pam T1556.003
. "$(dirname "$0")/lib.sh"
made=""
[ -d /etc/sudoers.d ] || { mkdir -m 750 /etc/sudoers.d; made=1; }
trap 'rm -f /etc/sudoers.d/sensor-scenario /etc/pam.d/sensor-scenario; [ -n "$made" ] && rmdir /etc/sudoers.d' EXIT
echo "# nobody ALL=(ALL) NOPASSWD: ALL  (scenario: a comment only)" > /etc/sudoers.d/sensor-scenario
echo "# auth sufficient pam_permit.so  (scenario: a comment only)" > /etc/pam.d/sensor-scenario
