//! Ed25519 signatures on checkpoint records.
//!
//! A checkpoint names the hash of the record before it (the head of the chain), so signing the
//! checkpoint signs every record up to it: someone who rewrites the files and recomputes the
//! hash chain still cannot produce the signatures. Keys are PKCS#8 PEM files, as written by
//! `sensor keygen` or `openssl genpkey -algorithm ed25519`.

use std::path::Path;

use ed25519_dalek::{
    Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey,
    pkcs8::{
        DecodePrivateKey as _, DecodePublicKey as _, EncodePrivateKey as _, EncodePublicKey as _,
        spki::der::pem::LineEnding,
    },
};
use sha2::{Digest as _, Sha256};

/// Domain separation for checkpoint signatures.
const CONTEXT: &[u8] = b"sensor-checkpoint-v1";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path}: not an Ed25519 {what} in PEM (PKCS#8/SPKI): {reason}")]
    Parse { path: String, what: &'static str, reason: String },
    #[error("{path}: {source}")]
    Write { path: String, source: std::io::Error },
}

/// The bytes a checkpoint signature covers.
pub fn message(instance_id: &str, seq: u64, records: u64, chain_hash: &[u8; 32]) -> Vec<u8> {
    let mut m = Vec::with_capacity(CONTEXT.len() + instance_id.len() + 50);
    m.extend_from_slice(CONTEXT);
    m.push(0);
    m.extend_from_slice(instance_id.as_bytes());
    m.push(0);
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(&records.to_be_bytes());
    m.extend_from_slice(chain_hash);
    m
}

/// First 8 bytes (hex) of the SHA-256 of the public key.
pub fn key_id(key: &VerifyingKey) -> String {
    hex::encode(&Sha256::digest(key.as_bytes())[..8])
}

/// Signs checkpoints.
pub struct CheckpointSigner {
    key: SigningKey,
    id: String,
}

impl std::fmt::Debug for CheckpointSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckpointSigner").field("key_id", &self.id).finish_non_exhaustive()
    }
}

impl CheckpointSigner {
    pub fn new(key: SigningKey) -> Self {
        let id = key_id(&key.verifying_key());
        Self { key, id }
    }

    /// Loads a PKCS#8 PEM private key.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let pem = read(path)?;
        let key = SigningKey::from_pkcs8_pem(&pem).map_err(|e| KeyError::Parse {
            path: path.display().to_string(),
            what: "private key",
            reason: e.to_string(),
        })?;
        Ok(Self::new(key))
    }

    pub fn key_id(&self) -> &str {
        &self.id
    }

    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.key.sign(message).to_bytes().to_vec()
    }
}

/// Loads an SPKI PEM public key (or derives it from a private key file).
pub fn load_public(path: &Path) -> Result<VerifyingKey, KeyError> {
    let pem = read(path)?;
    if let Ok(k) = VerifyingKey::from_public_key_pem(&pem) {
        return Ok(k);
    }
    SigningKey::from_pkcs8_pem(&pem).map(|k| k.verifying_key()).map_err(|e| KeyError::Parse {
        path: path.display().to_string(),
        what: "public key",
        reason: e.to_string(),
    })
}

/// Checks a signature.
pub fn verify(key: &VerifyingKey, message: &[u8], signature: &[u8]) -> bool {
    Signature::from_slice(signature).is_ok_and(|sig| key.verify(message, &sig).is_ok())
}

/// `sensor keygen`: writes a new private key (0600) and its public key beside it (`.pub`).
pub fn generate(private: &Path) -> Result<std::path::PathBuf, KeyError> {
    use std::{io::Write as _, os::unix::fs::OpenOptionsExt as _};
    let key = SigningKey::generate(&mut rand_core::OsRng);
    let err = |path: &Path| {
        let path = path.display().to_string();
        move |source| KeyError::Write { path, source }
    };
    let pem =
        key.to_pkcs8_pem(LineEnding::LF).map_err(|e| err(private)(std::io::Error::other(e.to_string())))?;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(private)
        .and_then(|mut f| f.write_all(pem.as_bytes()))
        .map_err(err(private))?;
    let public = private.with_extension("pub");
    let pub_pem = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| err(&public)(std::io::Error::other(e.to_string())))?;
    std::fs::write(&public, pub_pem).map_err(err(&public))?;
    Ok(public)
}

fn read(path: &Path) -> Result<String, KeyError> {
    std::fs::read_to_string(path)
        .map_err(|source| KeyError::Read { path: path.display().to_string(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_sign_and_verify() {
        let tmp = tempfile::tempdir().expect("tmp");
        let private = tmp.path().join("cp.key");
        let public = generate(&private).expect("keygen");
        let signer = CheckpointSigner::load(&private).expect("load private");
        let key = load_public(&public).expect("load public");
        assert_eq!(signer.key_id(), key_id(&key));
        let msg = message("inst", 7, 7, &[1; 32]);
        let sig = signer.sign(&msg);
        assert!(verify(&key, &msg, &sig));
        assert!(!verify(&key, &message("inst", 8, 7, &[1; 32]), &sig), "another seq");
        assert!(!verify(&key, &msg, &sig[..10]), "short signature");
        assert!(generate(&private).is_err(), "never overwrites a key");
        let bad = tmp.path().join("bad.pem");
        std::fs::write(&bad, "hello").expect("write");
        let e = CheckpointSigner::load(&bad).expect_err("bad key").to_string();
        assert!(e.contains("bad.pem") && e.contains("private key"), "{e}");
    }
}
