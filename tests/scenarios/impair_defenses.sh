#!/bin/bash
# The audit daemon is told to stop (a unit name that does not exist here, so nothing stops).
# expect: sensor.defense_evasion.security_service_stopped T1562.001
. "$(dirname "$0")/lib.sh"
systemctl stop auditd-sensor-scenario.service > /dev/null 2>&1 || true
