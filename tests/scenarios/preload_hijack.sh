#!/bin/bash
# The dynamic linker's preload list is written (left empty, then removed) and a program is
# started with LD_PRELOAD pointing into /tmp.
# expect: sensor.persistence.ld_preload T1574.006
# expect: sensor.persistence.ld_preload_env T1574.006
. "$(dirname "$0")/lib.sh"
if [ ! -e /etc/ld.so.preload ]; then
    trap 'rm -f /etc/ld.so.preload' EXIT
    : > /etc/ld.so.preload
    rm -f /etc/ld.so.preload
fi
bash -c "LD_PRELOAD=$SCN_DIR/none.so /bin/true" 2>/dev/null
