//! `syslog+tcp://HOST:PORT` and `syslog+tls://HOST:PORT`: RFC 5424 messages over TCP or TLS
//! with octet-counting framing (RFC 6587 §3.4.1, `LEN SP MSG`), one record per message.
//!
//! ```text
//! 123 <84>1 2026-11-23T12:00:00.123456Z ward-7 sensor 4242 exec [sensor@32473 seq="17" instance="…"] {"schema_version":1,…}
//! ```
//!
//! - PRI: facility `authpriv` (10), the one syslog daemons keep in a root-only file and SIEMs
//!   file under security; severity `warning` for loss records, `notice` for privilege, ptrace,
//!   module, bpf and memfd events, `info` for the rest.
//! - HOSTNAME is the record's host, APP-NAME `sensor`, PROCID the sensor's pid, MSGID the event
//!   kind (`exec`, `file`, `loss`, …).
//! - STRUCTURED-DATA `[sensor@32473 seq="N" instance="ID"]`: receivers de-duplicate re-sends by
//!   (instance, seq). 32473 is the documentation enterprise number (RFC 5612).
//! - MSG is the record as one line of JSON (canonical or OCSF, per the output's format),
//!   without a BOM (several SIEM JSON parsers reject one).
//!
//! TLS uses rustls with certificate and host name verification against `tls.ca_file` or the
//! system roots; there is no plaintext fallback. An optional client certificate serves
//! receivers that require mutual TLS.
//!
//! Syslog over TCP has no acknowledgements, so `deliver` waits until the receiving kernel has
//! acknowledged every byte (the socket's send queue is empty) and checks that the receiver has
//! not closed the connection before each batch; the spool re-sends recent records after an
//! error, covering a receiver that dies with accepted but unwritten messages.

use std::{
    io::{self, Read as _, Write as _},
    net::{TcpStream, ToSocketAddrs as _},
    os::fd::{AsRawFd as _, RawFd},
    sync::Arc,
    time::{Duration, Instant},
};

use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject as _};
use sensor_proto::AuditRecord;

use super::{
    OutputOptions, SinkError, render,
    spec::{Format, TlsOptions},
    transport::{self, Encoder, Outgoing, Transport},
};

/// RFC 5424 facility 10: security/authorization messages (private).
const FACILITY_AUTHPRIV: u8 = 10;
pub const SEVERITY_CRITICAL: u8 = 2;
pub const SEVERITY_ERROR: u8 = 3;
pub const SEVERITY_WARNING: u8 = 4;
pub const SEVERITY_NOTICE: u8 = 5;
pub const SEVERITY_INFO: u8 = 6;
/// The SD-ID of the sensor's structured data.
pub const SD_ID: &str = "sensor@32473";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const IO_TIMEOUT: Duration = Duration::from_secs(10);

enum Conn {
    Tcp(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Conn {
    fn fd(&self) -> RawFd {
        match self {
            Self::Tcp(s) => s.as_raw_fd(),
            Self::Tls(s) => s.sock.as_raw_fd(),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Self::Tcp(s) => s.write_all(buf),
            Self::Tls(s) => s.write_all(buf).and_then(|()| s.flush()),
        }
    }

    /// Whether the receiver closed the connection (or it failed): end of stream or an error.
    /// Receivers send nothing on a syslog connection; stray bytes are read and ignored.
    fn closed(&mut self) -> bool {
        let sock = match self {
            Self::Tcp(s) => &*s,
            Self::Tls(s) => &s.sock,
        };
        if sock.set_nonblocking(true).is_err() {
            return true;
        }
        let closed = match self {
            Self::Tcp(s) => !would_block_or_data(&s.peek(&mut [0u8; 1])),
            Self::Tls(s) => {
                let mut buf = [0u8; 512];
                loop {
                    match s.read(&mut buf) {
                        Ok(0) => break true,
                        Ok(_) => {}
                        Err(e) => break e.kind() != io::ErrorKind::WouldBlock,
                    }
                }
            }
        };
        let sock = match self {
            Self::Tcp(s) => &*s,
            Self::Tls(s) => &s.sock,
        };
        closed || sock.set_nonblocking(false).is_err()
    }

    /// Waits until the receiving kernel acknowledged everything written; fails when nothing
    /// is acknowledged for `IO_TIMEOUT`.
    fn wait_acked(&self) -> io::Result<()> {
        let mut start = Instant::now();
        let mut pause = Duration::from_micros(200);
        let mut last = libc::c_int::MAX;
        loop {
            let mut queued: libc::c_int = 0;
            // SAFETY: TIOCOUTQ (SIOCOUTQ on a TCP socket) writes one int to the pointer.
            let rc = unsafe { libc::ioctl(self.fd(), libc::TIOCOUTQ, &mut queued) };
            if rc != 0 {
                return Err(io::Error::last_os_error());
            }
            if queued == 0 {
                return Ok(());
            }
            if queued < last {
                // Progress: a slow link is not a dead one.
                last = queued;
                start = Instant::now();
            }
            if start.elapsed() > IO_TIMEOUT {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the receiver does not acknowledge data",
                ));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(10));
        }
    }
}

/// A peek that found the connection alive: data, or nothing to read yet.
fn would_block_or_data(r: &io::Result<usize>) -> bool {
    match r {
        Ok(n) => *n > 0,
        Err(e) => e.kind() == io::ErrorKind::WouldBlock,
    }
}

/// The output's name, `syslog+tcp://HOST:PORT` or `syslog+tls://HOST:PORT`.
fn output_name(tls: bool, host: &str, port: u16) -> String {
    super::OutputSpec::Syslog { tls, host: host.to_owned(), port }.to_string()
}

/// Renders records into octet-counted RFC 5424 messages (on the record thread).
#[derive(Debug)]
pub struct SyslogEncoder {
    name: String,
    format: Format,
    procid: String,
}

impl SyslogEncoder {
    pub fn new(tls: bool, host: &str, port: u16, format: Format) -> Self {
        Self { name: output_name(tls, host, port), format, procid: std::process::id().to_string() }
    }
}

impl Encoder for SyslogEncoder {
    fn encode(&self, record: &AuditRecord, _encoded: &[u8]) -> Result<Vec<u8>, SinkError> {
        let mut msg = Vec::with_capacity(1024);
        header(record, &self.procid, &mut msg);
        render::json(record, self.format, &mut msg)
            .map_err(|source| SinkError::Json { sink: self.name.clone(), source })?;
        let mut framed = Vec::with_capacity(msg.len() + 8);
        framed.extend_from_slice(format!("{} ", msg.len()).as_bytes());
        framed.extend_from_slice(&msg);
        Ok(framed)
    }
}

/// A syslog receiver over TCP or TLS.
pub struct SyslogTransport {
    name: String,
    host: String,
    port: u16,
    tls: Option<(Arc<ClientConfig>, ServerName<'static>)>,
    conn: Option<Conn>,
    buf: Vec<u8>,
}

impl SyslogTransport {
    /// Prepares the transport (reads TLS material now, so a bad path fails at start); connects
    /// on the first delivery.
    pub fn new(tls: bool, host: &str, port: u16, opts: &OutputOptions) -> Result<Self, SinkError> {
        let name = output_name(tls, host, port);
        let tls = if tls {
            let config =
                client_config(&opts.tls).map_err(|reason| SinkError::Tls { sink: name.clone(), reason })?;
            let sni = opts.tls.server_name.clone().unwrap_or_else(|| host.to_owned());
            let sni = ServerName::try_from(sni.clone()).map_err(|e| SinkError::Tls {
                sink: name.clone(),
                reason: format!("server name `{sni}`: {e}"),
            })?;
            Some((config, sni))
        } else {
            None
        };
        transport::count_built();
        Ok(Self { name, host: host.to_owned(), port, tls, conn: None, buf: Vec::new() })
    }

    fn io(&self, source: io::Error) -> SinkError {
        SinkError::Io { sink: self.name.clone(), source }
    }

    fn connect(&self) -> io::Result<Conn> {
        let mut last =
            io::Error::new(io::ErrorKind::NotFound, format!("{} resolves to no address", self.host));
        for addr in (self.host.as_str(), self.port).to_socket_addrs()? {
            match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
                Ok(sock) => {
                    sock.set_nodelay(true)?;
                    sock.set_read_timeout(Some(IO_TIMEOUT))?;
                    sock.set_write_timeout(Some(IO_TIMEOUT))?;
                    let Some((config, sni)) = &self.tls else { return Ok(Conn::Tcp(sock)) };
                    let conn =
                        ClientConnection::new(config.clone(), sni.clone()).map_err(io::Error::other)?;
                    let mut tls = StreamOwned::new(conn, sock);
                    // Handshake now, so a certificate problem is reported as such.
                    while tls.conn.is_handshaking() {
                        tls.conn.complete_io(&mut tls.sock)?;
                    }
                    return Ok(Conn::Tls(Box::new(tls)));
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn send(&mut self, batch: &[Outgoing]) -> io::Result<()> {
        if self.conn.as_mut().is_some_and(Conn::closed) {
            self.conn = None;
        }
        let mut conn = match self.conn.take() {
            Some(c) => c,
            None => self.connect()?,
        };
        self.buf.clear();
        for o in batch {
            self.buf.extend_from_slice(&o.payload);
        }
        conn.write_all(&self.buf)?;
        conn.wait_acked()?;
        self.conn = Some(conn);
        Ok(())
    }
}

impl Transport for SyslogTransport {
    fn name(&self) -> &str {
        &self.name
    }

    fn deliver(&mut self, batch: &[Outgoing]) -> Result<(), SinkError> {
        // On error the connection is dropped; the spool re-sends after a backoff.
        self.send(batch).map_err(|e| self.io(e))
    }
}

/// The syslog severity of a record kind. Each record kind implements it in its module under
/// `crate::kinds`; its MSGID is the kind's name ([`sensor_proto::EventName`]).
pub trait SyslogSeverity {
    /// One of the `SEVERITY_*` constants.
    fn syslog_severity(&self) -> u8;
}

/// The event kind (MSGID) and severity of a record.
pub fn kind(record: &AuditRecord) -> (&'static str, u8) {
    match &record.event {
        Some(e) => sensor_proto::match_event!(e, x => (sensor_proto::name_of(x), x.syslog_severity())),
        None => ("-", SEVERITY_INFO),
    }
}

/// `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD ` (with the space before MSG).
fn header(record: &AuditRecord, procid: &str, out: &mut Vec<u8>) {
    use std::fmt::Write as _;
    let (msgid, severity) = kind(record);
    let pri = FACILITY_AUTHPRIV * 8 + severity;
    let mut s = format!("<{pri}>1 ");
    match &record.time {
        Some(t) => rfc3339(t.seconds, t.nanos, &mut s),
        None => s.push('-'),
    }
    let host = record.host.as_ref();
    let hostname = host.map_or("", |h| h.hostname.as_str());
    let _ =
        write!(s, " {} sensor {procid} {msgid} [{SD_ID} seq=\"{}\"", printable(hostname, 255), record.seq);
    if let Some(h) = host.filter(|h| !h.instance_id.is_empty()) {
        s.push_str(" instance=\"");
        sd_escape(&h.instance_id, &mut s);
        s.push('"');
    }
    s.push_str("] ");
    out.extend_from_slice(s.as_bytes());
}

/// A header field: printable US-ASCII only (others become `_`), at most `max`, `-` when empty.
fn printable(s: &str, max: usize) -> String {
    let v: String = s.chars().take(max).map(|c| if c.is_ascii_graphic() { c } else { '_' }).collect();
    if v.is_empty() { "-".into() } else { v }
}

/// PARAM-VALUE escaping (RFC 5424 §6.3.3): `"`, `\` and `]` get a backslash.
fn sd_escape(v: &str, out: &mut String) {
    for c in v.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
}

/// `YYYY-MM-DDThh:mm:ss.ssssssZ` (UTC, microseconds), or RFC 5424's `-` (NILVALUE) for a time
/// RFC 3339 cannot show (before 1970 or after 9999).
fn rfc3339(seconds: i64, nanos: i32, out: &mut String) {
    use std::fmt::Write as _;
    let nanos = u32::try_from(nanos.clamp(0, 999_999_999)).unwrap_or(0);
    let time = u64::try_from(seconds)
        .ok()
        .filter(|s| *s <= 253_402_300_799)
        .map(|s| std::time::UNIX_EPOCH + std::time::Duration::new(s, nanos));
    match time {
        Some(t) if write!(out, "{}", humantime::format_rfc3339_micros(t)).is_ok() => {}
        _ => out.push('-'),
    }
}

/// The rustls client configuration: roots from `ca_file` or the system store, optional
/// client certificate.
fn client_config(opts: &TlsOptions) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    match &opts.ca_file {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(Iterator::collect::<Result<Vec<_>, _>>)
                .map_err(|e| format!("CA file {}: {e}", path.display()))?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(format!("CA file {}: no usable certificate", path.display()));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err("no system CA certificates found; set the output's ca_file".into());
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    let config = match (&opts.cert_file, &opts.key_file) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .and_then(Iterator::collect::<Result<Vec<_>, _>>)
                .map_err(|e| format!("client certificate {}: {e}", cert.display()))?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| format!("client key {}: {e}", key.display()))?;
            builder.with_client_auth_cert(chain, key).map_err(|e| format!("client certificate: {e}"))?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => return Err("a client certificate needs both cert_file and key_file".into()),
    };
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests;
