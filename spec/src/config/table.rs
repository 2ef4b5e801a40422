//! The defaults table of SPEC.md §5, rendered from a [`Config`] so that the document cannot
//! drift from [`Config::default`] (a test checks that SPEC.md contains it verbatim).

use alloc::borrow::ToOwned as _;
use alloc::format;
use alloc::string::{String, ToString as _};
use core::fmt::Write as _;
use core::time::Duration;

use super::{Config, CredentialKind, Profile};

/// `0.5 s`, `30 s`, `2 min`, `1 h`.
fn human(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        "0".into()
    } else if ms.is_multiple_of(3_600_000) {
        format!("{} h", ms / 3_600_000)
    } else if ms.is_multiple_of(60_000) {
        format!("{} min", ms / 60_000)
    } else if ms.is_multiple_of(1_000) {
        format!("{} s", ms / 1_000)
    } else {
        format!("{} s", d.as_secs_f64())
    }
}

fn profile(p: &Profile) -> String {
    format!(
        "floor {}, initial {}, cap {}",
        human(p.floor),
        human(p.initial),
        human(p.cap)
    )
}

/// Renders the defaults of `c` as the markdown table SPEC.md §5 embeds.
pub fn render_table(c: &Config) -> String {
    let credential = match c.credential {
        CredentialKind::Sas => "`Sas` (`X509` for certificate devices)",
        CredentialKind::X509 => "`X509`",
    };
    let spread = if c.reprovision_spread.is_zero() {
        "0 (off)".to_owned()
    } else {
        human(c.reprovision_spread)
    };
    let rows: [(&str, String, &str); 13] = [
        (
            "`unreachable_threshold`",
            c.unreachable_threshold.to_string(),
            "G1",
        ),
        (
            "`unavailable_threshold`",
            c.unavailable_threshold.to_string(),
            "G3",
        ),
        ("`fast`", profile(&c.fast), "G5"),
        (
            "`slow`",
            format!(
                "{} (the floor is the least time between two attempts while blocked)",
                profile(&c.slow)
            ),
            "G4",
        ),
        (
            "`recheck`",
            format!("{} (equal jitter, §4.2)", profile(&c.recheck)),
            "G9",
        ),
        ("`min_attempt_spacing`", human(c.min_attempt_spacing), "G7"),
        ("`stable_after`", human(c.stable_after), "G7"),
        ("`attempt_timeout`", human(c.attempt_timeout), "G1, G8"),
        (
            "`token_ttl`, `renew_at_percent`",
            format!("{}, {} %", human(c.token_ttl), c.renew_at_percent),
            "G7",
        ),
        (
            "`retry_after_jitter`, `max_retry_after`",
            format!(
                "{}, {}",
                human(c.retry_after_jitter),
                human(c.max_retry_after)
            ),
            "G6",
        ),
        ("`dps_poll_default`", human(c.dps_poll_default), "§3.4"),
        (
            "`reprovision_spread`",
            format!("{spread}; `paced_for_fleet(N, R)` = N/R · 110 %"),
            "§4.1",
        ),
        ("`credential`", credential.to_owned(), "G2, G7"),
    ];
    let mut out = String::from("| field | default | used by |\n| --- | --- | --- |\n");
    for (field, value, used) in rows {
        let _ = writeln!(out, "| {field} | {value} | {used} |");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_md_states_the_defaults_verbatim() {
        let spec = include_str!("../../SPEC.md");
        let table = render_table(&Config::default());
        assert!(
            spec.contains(&table),
            "SPEC.md §5 must contain config::render_table(&Config::default()) verbatim:\n{table}"
        );
    }

    #[test]
    fn a_changed_default_changes_the_table() {
        let mut c = Config::default();
        let before = render_table(&c);
        c.fast.cap = Duration::from_mins(3);
        assert_ne!(render_table(&c), before);
        assert!(render_table(&c).contains("cap 3 min"));
        assert_eq!(human(Duration::from_millis(500)), "0.5 s");
    }
}
