//! What wt-client and wt-load share: how they are pointed at a server, and the CPU time they
//! report.

use std::time::Duration;

/// `--url`, `--cert-hash` and `--timeout-ms`, the options every test and bench runner passes the
/// same way to either client.
pub struct Target {
    url: Option<String>,
    cert_hash: Option<[u8; 32]>,
    timeout: Duration,
}

impl Target {
    pub fn new(default_timeout: Duration) -> Self {
        Target { url: None, cert_hash: None, timeout: default_timeout }
    }

    /// Takes `arg` and its value from `rest` if it is one of these options; false if it is not.
    /// `parse_hash` is the tool's own, so that each keeps the wording of its error.
    pub fn take(
        &mut self,
        arg: &str,
        rest: &mut impl Iterator<Item = String>,
        parse_hash: fn(&str) -> Result<[u8; 32], String>,
    ) -> Result<bool, String> {
        let mut value = |name: &str| rest.next().ok_or_else(|| format!("{name} needs a value"));
        match arg {
            "--url" => self.url = Some(value("--url")?),
            "--cert-hash" => self.cert_hash = Some(parse_hash(&value("--cert-hash")?)?),
            "--timeout-ms" => {
                let v = value("--timeout-ms")?;
                let ms: u64 = v.parse().map_err(|_| format!("bad --timeout-ms {v:?}"))?;
                self.timeout = Duration::from_millis(ms.max(1));
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The URL, the pinned hash and the timeout, once every argument is read: there is no
    /// default server, and no connection without a pin.
    pub fn finish(self, usage: &str) -> Result<(String, [u8; 32], Duration), String> {
        let url = self.url.ok_or_else(|| format!("--url is required\n{usage}"))?;
        let cert_hash = self.cert_hash.ok_or_else(|| format!("--cert-hash is required\n{usage}"))?;
        Ok((url, cert_hash, self.timeout))
    }
}

/// This process's CPU time (user + system) from /proc/self/stat, in seconds (Linux, 100 Hz
/// ticks). bench/run.mjs subtracts it from the machine's busy time, whichever client ran, so both
/// must measure it alike.
pub fn self_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // fields[0] is field 3 (state): utime and stime are fields 14 and 15.
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(s: &str) -> Result<[u8; 32], String> {
        crate::hash::parse_sha256(s).map_err(|_| "bad hash".to_string())
    }

    #[test]
    fn target_options_are_taken_and_required() {
        let mut target = Target::new(Duration::from_secs(5));
        let pin = "ab".repeat(32);
        let mut rest = ["https://127.0.0.1:1/echo".to_string(), pin, "0".into(), "x".into()].into_iter();
        assert!(target.take("--url", &mut rest, hash).unwrap());
        assert!(target.take("--cert-hash", &mut rest, hash).unwrap());
        assert!(target.take("--timeout-ms", &mut rest, hash).unwrap());
        assert!(!target.take("--threads", &mut rest, hash).unwrap());
        assert_eq!(target.take("--timeout-ms", &mut rest, hash), Err("bad --timeout-ms \"x\"".to_string()));
        let (url, pin, timeout) = target.finish("usage").unwrap();
        assert_eq!((url.as_str(), pin[0], timeout), ("https://127.0.0.1:1/echo", 0xab, Duration::from_millis(1)));
        assert_eq!(Target::new(Duration::ZERO).finish("usage").err().unwrap(), "--url is required\nusage");
    }

    #[test]
    fn cpu_time_is_read() {
        assert!(self_cpu_seconds().is_some_and(|s| s >= 0.0));
    }
}
