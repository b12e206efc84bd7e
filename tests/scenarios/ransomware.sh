#!/bin/bash
# A share's files are "encrypted" one by one (a copy, an mv to a new extension, an rm each),
# and a ransom note is left.
# expect: sensor.impact.mass_rename T1486
# expect: sensor.impact.ransom_note T1486
. "$(dirname "$0")/lib.sh"
share="$SCN_DIR/share"
mkdir -p "$share"
for i in $(seq 1 30); do echo "chart $i" > "$share/patient$i.docx"; done
for i in $(seq 1 30); do
    mv "$share/patient$i.docx" "$share/patient$i.docx.locked"
done
echo "Your files are encrypted." > "$share/HOW_TO_DECRYPT.txt"
