//! The `check` report: one line per requirement, `setting: expected X, found Y — fix: ...`.

use std::fmt;

/// How a requirement stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    Ok,
    /// Works, but not as recommended; does not fail the check.
    Warn,
    /// rowferry cannot run correctly until this is fixed.
    Fail,
}

/// One requirement and how the server meets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub status: Status,
    pub setting: String,
    pub expected: String,
    pub found: String,
    /// Exact SQL or config line that fixes it; present unless the status is Ok.
    pub fix: Option<String>,
}

impl Finding {
    pub fn ok(setting: &str, expected: impl Into<String>, found: impl Into<String>) -> Finding {
        Finding {
            status: Status::Ok,
            setting: setting.into(),
            expected: expected.into(),
            found: found.into(),
            fix: None,
        }
    }

    pub fn fail(
        setting: &str,
        expected: impl Into<String>,
        found: impl Into<String>,
        fix: impl Into<String>,
    ) -> Finding {
        Finding {
            status: Status::Fail,
            setting: setting.into(),
            expected: expected.into(),
            found: found.into(),
            fix: Some(fix.into()),
        }
    }

    pub fn warn(
        setting: &str,
        expected: impl Into<String>,
        found: impl Into<String>,
        fix: impl Into<String>,
    ) -> Finding {
        Finding { status: Status::Warn, ..Finding::fail(setting, expected, found, fix) }
    }

    /// Ok when `good`, otherwise a failure with `fix`.
    pub fn require(good: bool, setting: &str, expected: &str, found: &str, fix: impl FnOnce() -> String) -> Finding {
        if good { Finding::ok(setting, expected, found) } else { Finding::fail(setting, expected, found, fix()) }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tag = match self.status {
            Status::Ok => "ok  ",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
        };
        write!(f, "{tag} {}: expected {}, found {}", self.setting, self.expected, self.found)?;
        if let Some(fix) = &self.fix {
            write!(f, " — fix: {fix}")?;
        }
        Ok(())
    }
}

/// Every finding, in the order checked.
#[derive(Debug, Default)]
pub struct Report {
    pub findings: Vec<Finding>,
}

impl Report {
    /// True when nothing failed (warnings allowed).
    pub fn passed(&self) -> bool {
        self.findings.iter().all(|f| f.status != Status::Fail)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for finding in &self.findings {
            writeln!(f, "{finding}")?;
        }
        let failed = self.findings.iter().filter(|x| x.status == Status::Fail).count();
        let warned = self.findings.iter().filter(|x| x.status == Status::Warn).count();
        if failed == 0 {
            write!(f, "check passed ({} checks, {warned} warnings)", self.findings.len())
        } else {
            write!(f, "check failed: {failed} of {} checks failed ({warned} warnings)", self.findings.len())
        }
    }
}
