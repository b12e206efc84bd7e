#!/bin/bash
# The login record log (wtmp) is emptied; its content is put back afterwards.
# expect: sensor.defense_evasion.log_tampering T1070.002
. "$(dirname "$0")/lib.sh"
if [ -f /var/log/wtmp ]; then
    cp -p /var/log/wtmp "$SCN_DIR/wtmp.bak"
    truncate -s 0 /var/log/wtmp
    cat "$SCN_DIR/wtmp.bak" > /var/log/wtmp
else
    : > /var/log/wtmp
    rm -f /var/log/wtmp
fi
