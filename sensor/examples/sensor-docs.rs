//! Man pages and shell completions generated from the `sensor` command-line definitions, for the
//! Debian package (`cargo xtask package` runs it): `sensor-docs OUT_DIR` writes
//!
//! - `OUT_DIR/man/sensor.8` and one page per subcommand at every level (`sensor-run.8`,
//!   `sensor-records.8`, `sensor-records-cat.8`, …), section 8 as the binary is in /usr/sbin;
//! - `OUT_DIR/completions/sensor.bash`, `_sensor` (zsh) and `sensor.fish`.
//!
//! Generated at package time from the same `clap` definitions the binary parses with, so
//! subcommands and flags added to `sensor/src/cli` appear without anything written by hand.

use std::{fs, path::Path};

use clap::CommandFactory as _;
use clap_complete::Shell;
use clap_mangen::Man;

fn main() -> std::io::Result<()> {
    let out = std::env::args_os()
        .nth(1)
        .map(std::path::PathBuf::from)
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "usage: sensor-docs OUT_DIR"))?;
    let mut cmd = sensor::cli::Cli::command().disable_help_subcommand(true);
    cmd.build();

    let man_dir = out.join("man");
    fs::create_dir_all(&man_dir)?;
    let version = cmd.get_version().unwrap_or_default().to_owned();
    let pages = man_pages(&cmd, &man_dir, &version)?;
    eprintln!("sensor-docs: {pages} man pages in {}", man_dir.display());

    let comp_dir = out.join("completions");
    fs::create_dir_all(&comp_dir)?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let path = clap_complete::generate_to(shell, &mut cmd, "sensor", &comp_dir)?;
        eprintln!("sensor-docs: {}", path.display());
    }
    Ok(())
}

/// Writes the page of `cmd` and of each (not hidden) subcommand below it; returns the count.
fn man_pages(cmd: &clap::Command, dir: &Path, version: &str) -> std::io::Result<usize> {
    let mut count = 0;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        count += man_pages(sub, dir, version)?;
    }
    // Subcommands have no version of their own; every page's footer names the package's.
    let page = Man::new(cmd.clone())
        .section("8")
        .source(format!("sensor {version}"))
        .manual("System Administration");
    let mut roff = Vec::new();
    page.render_title(&mut roff)?;
    page.render_name_section(&mut roff)?;
    page.render_synopsis_section(&mut roff)?;
    page.render_description_section(&mut roff)?;
    page.render_options_section(&mut roff)?;
    if cmd.has_subcommands() {
        page.render_subcommands_section(&mut roff)?;
    }
    if cmd.get_after_long_help().is_some() || cmd.get_after_help().is_some() {
        page.render_extra_section(&mut roff)?;
    }
    if cmd.get_name() == "sensor" {
        roff.extend_from_slice(PACKAGE_SECTIONS.as_bytes());
    }
    if cmd.get_version().is_some() {
        page.render_version_section(&mut roff)?;
    }
    fs::write(dir.join(page.get_filename()), roff)?;
    Ok(count + 1)
}

/// Where the Debian package puts things, on the top page.
const PACKAGE_SECTIONS: &str = r".SH FILES
.TP
\fI/etc/sensor/sensor.toml\fR
The configuration read by the service (\fBsensor run \-\-config\fR); every key is documented
in it. Check changes with \fBsensor config check\fR.
.TP
\fI/etc/sensor/rules.d/\fR
For the site's own detection rules.
.TP
\fI/var/lib/sensor/\fR
State, mode 0700: record files (\fIrecords/\fR) and network output spools (\fIspool/\fR).
.TP
\fI/lib/systemd/system/sensor.service\fR
The service: \fBsystemctl status sensor\fR, \fBjournalctl \-u sensor\fR.
.SH ENVIRONMENT
.TP
\fBSENSOR_LOG\fR
Log level or filter (default \fBinfo\fR); logs go to standard error.
.SH SEE ALSO
\fBsensor\-run\fR(8), \fBsensor\-records\fR(8), \fBsensor\-trace\fR(8), \fBsystemd.exec\fR(5)
";
