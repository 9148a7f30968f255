//! Credentials written into a peer's URL (`https://key:secret@registry.example`): taken out
//! before the URL is used, so that no request line, error or log line carries them.

use reqwest::Url;

/// A user name and password from a URL's userinfo, percent-decoded.
#[derive(Clone, PartialEq)]
pub struct Basic {
    /// The user name (an API key, for Confluent Cloud).
    pub user: String,
    /// The password (the API secret).
    pub password: String,
}

impl std::fmt::Debug for Basic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Basic")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// `url` without its userinfo, and the credentials that were there. A string that is not a URL
/// is refused without being repeated (it may hold a secret).
pub fn split(url: &str) -> Result<(String, Option<Basic>), String> {
    let mut parsed = Url::parse(url.trim()).map_err(|e| format!("not a URL ({e})"))?;
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    let basic = (!parsed.username().is_empty() || parsed.password().is_some()).then(|| Basic {
        user: decode(parsed.username()),
        password: decode(parsed.password().unwrap_or_default()),
    });
    // Err only for URLs that cannot have userinfo (`mailto:`), which then had none.
    let _ = parsed.set_username("");
    let _ = parsed.set_password(None);
    Ok((parsed.as_str().trim_end_matches('/').to_owned(), basic))
}

/// `url` as it may be logged: without its userinfo (or a placeholder if it is not a URL).
pub fn redacted(url: &str) -> String {
    split(url).map_or_else(|_| "<not a URL>".to_owned(), |(url, _)| url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_is_taken_out_and_decoded() {
        let (url, basic) = split("https://KEY:s%40cret@registry.example:8081/").expect("a URL");
        assert_eq!(url, "https://registry.example:8081");
        let basic = basic.expect("credentials");
        assert_eq!(
            (basic.user.as_str(), basic.password.as_str()),
            ("KEY", "s@cret")
        );
        assert!(!format!("{basic:?}").contains("cret"));
        assert_eq!(
            split("http://127.0.0.1:8081").expect("a URL"),
            ("http://127.0.0.1:8081".to_owned(), None)
        );
        assert_eq!(redacted("https://a:b@h/x"), "https://h/x");
        assert_eq!(redacted("secret-without-scheme"), "<not a URL>");
    }
}
