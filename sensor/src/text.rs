//! Kernel bytes → record text. Valid UTF-8 passes unchanged; otherwise invalid bytes become
//! `\xNN`, a backslash becomes `\\`, and the caller keeps the exact bytes in a `*_raw` field.

use std::fmt::Write as _;

/// Text for a record string field, and whether it was escaped (then the raw bytes must be kept).
pub fn text(bytes: &[u8]) -> (String, bool) {
    let mut out = String::new();
    let escaped = text_into(bytes, &mut out);
    (out, escaped)
}

/// [`text`] written into `out` (in its allocation when it has room); whether it was escaped.
pub fn text_into(bytes: &[u8], out: &mut String) -> bool {
    out.clear();
    match std::str::from_utf8(bytes) {
        Ok(s) => {
            out.push_str(s);
            false
        }
        Err(_) => {
            escape_into(bytes, out);
            true
        }
    }
}

fn escape_into(bytes: &[u8], out: &mut String) {
    out.reserve(bytes.len() + 8);
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == '\\' {
                out.push_str("\\\\");
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_passes_and_invalid_bytes_are_escaped() {
        assert_eq!(text(b"/tmp/a\nb"), ("/tmp/a\nb".to_owned(), false));
        assert_eq!(text(b"a\\b\xff\xfe"), ("a\\\\b\\xff\\xfe".to_owned(), true));
        assert_eq!(text("é".as_bytes()), ("é".to_owned(), false));
    }
}
