#!/bin/bash
# A local account is created and deleted again; a user is also appended to /etc/passwd by hand
# on a copy (the real file is restored byte for byte).
# expect: sensor.persistence.account_change T1136.001
# expect: sensor.persistence.passwd_edit T1136.001
. "$(dirname "$0")/lib.sh"
user="scn$$"
trap 'userdel -r "$user" 2>/dev/null; [ -f "$SCN_DIR/passwd.bak" ] && cat "$SCN_DIR/passwd.bak" > /etc/passwd' EXIT
useradd -M -s /usr/sbin/nologin "$user"
cp -p /etc/passwd "$SCN_DIR/passwd.bak"
echo "scnfake$$:x:0:0::/nonexistent:/usr/sbin/nologin" >> /etc/passwd
cat "$SCN_DIR/passwd.bak" > /etc/passwd
rm -f "$SCN_DIR/passwd.bak"
