#!/bin/bash
# A sudo rule and a PAM file are dropped in (comments only) and removed again.
# expect: sensor.privilege_escalation.sudoers T1548.003
# expect: sensor.persistence.pam T1556.003
. "$(dirname "$0")/lib.sh"
trap 'rm -f /etc/sudoers.d/sensor-scenario /etc/pam.d/sensor-scenario' EXIT
echo "# nobody ALL=(ALL) NOPASSWD: ALL  (scenario: a comment only)" > /etc/sudoers.d/sensor-scenario
echo "# auth sufficient pam_permit.so  (scenario: a comment only)" > /etc/pam.d/sensor-scenario
