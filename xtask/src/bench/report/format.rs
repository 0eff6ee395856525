//! How numbers print: thousands separators, ms or s, MB = 10^6 bytes. One place, so
//! that every table reads alike; no figure is computed here.

pub fn mb(kb: u64) -> f64 {
    kb as f64 * 1024.0 / 1e6
}

pub fn thousands(x: f64) -> String {
    let s = format!("{:.0}", x.max(0.0));
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub fn secs(s: f64) -> String {
    if s < 1.0 {
        format!("{:.0} ms", s * 1e3)
    } else {
        format!("{s:.2} s")
    }
}

pub fn opt_secs(s: Option<f64>) -> String {
    s.map_or("-".into(), secs)
}
