//! What an HLS request asks for, from its file name and query string.

/// One HLS resource of a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HlsFile {
    /// The media playlist, after a blocking reload when `msn` is given.
    Playlist {
        msn: Option<u64>,
        part: Option<u32>,
    },
    Init,
    Segment(u64),
    Part(u64, u32),
}

/// Why a request names nothing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HlsRequestError {
    #[error("no HLS file {0:?}")]
    UnknownFile(String),
    /// RFC 8216bis §6.2.5.2: a malformed delivery directive is a 400.
    #[error("bad delivery directive: {0}")]
    BadDirective(&'static str),
}

/// Longest file name or query considered; anything longer is not ours.
const MAX_LEN: usize = 256;

impl HlsFile {
    /// Parses `/live/{stream}/{file}?{query}`. Unknown query parameters are
    /// ignored (players add cache busters); `_HLS_msn`/`_HLS_part` must be
    /// decimal numbers, and `_HLS_part` needs `_HLS_msn`.
    pub fn parse(file: &str, query: Option<&str>) -> Result<Self, HlsRequestError> {
        let unknown = || HlsRequestError::UnknownFile(file.chars().take(64).collect());
        if file.len() > MAX_LEN {
            return Err(unknown());
        }
        if file == "index.m3u8" {
            let (mut msn, mut part) = (None, None);
            let query = query.unwrap_or("");
            if query.len() > MAX_LEN {
                return Err(HlsRequestError::BadDirective("query string too long"));
            }
            for kv in query.split('&') {
                match kv.split_once('=') {
                    Some(("_HLS_msn", v)) => {
                        msn = Some(
                            decimal(v)
                                .ok_or(HlsRequestError::BadDirective("_HLS_msn is not a number"))?,
                        );
                    }
                    Some(("_HLS_part", v)) => {
                        part =
                            Some(decimal(v).and_then(|p| u32::try_from(p).ok()).ok_or(
                                HlsRequestError::BadDirective("_HLS_part is not a number"),
                            )?);
                    }
                    _ => {}
                }
            }
            if part.is_some() && msn.is_none() {
                return Err(HlsRequestError::BadDirective("_HLS_part without _HLS_msn"));
            }
            return Ok(HlsFile::Playlist { msn, part });
        }
        if file == super::INIT_URI {
            return Ok(HlsFile::Init);
        }
        if let Some(n) = file
            .strip_prefix("seg")
            .and_then(|f| f.strip_suffix(".m4s"))
        {
            return decimal(n).map(HlsFile::Segment).ok_or_else(unknown);
        }
        if let Some(p) = file
            .strip_prefix("part")
            .and_then(|f| f.strip_suffix(".m4s"))
        {
            let (m, n) = p.split_once('.').ok_or_else(unknown)?;
            let msn = decimal(m).ok_or_else(unknown)?;
            let part = decimal(n)
                .and_then(|p| u32::try_from(p).ok())
                .ok_or_else(unknown)?;
            return Ok(HlsFile::Part(msn, part));
        }
        Err(unknown())
    }
}

/// A plain decimal number (no sign, no spaces), as the playlist writes them.
fn decimal(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_with_the_writers() {
        assert_eq!(
            HlsFile::parse(super::super::INIT_URI, None),
            Ok(HlsFile::Init)
        );
        assert_eq!(
            HlsFile::parse(&super::super::segment_uri(41), None),
            Ok(HlsFile::Segment(41))
        );
        assert_eq!(
            HlsFile::parse(&super::super::part_uri(41, 3), Some("x=1")),
            Ok(HlsFile::Part(41, 3))
        );
    }

    #[test]
    fn delivery_directives() {
        assert_eq!(
            HlsFile::parse("index.m3u8", Some("_HLS_msn=7&_HLS_part=2&t=123")),
            Ok(HlsFile::Playlist {
                msn: Some(7),
                part: Some(2)
            })
        );
        assert_eq!(
            HlsFile::parse("index.m3u8", None),
            Ok(HlsFile::Playlist {
                msn: None,
                part: None
            })
        );
        for bad in [
            "_HLS_part=1",
            "_HLS_msn=-1",
            "_HLS_msn=1&_HLS_part=x",
            "_HLS_msn=+3",
            "_HLS_msn=",
        ] {
            assert!(
                matches!(
                    HlsFile::parse("index.m3u8", Some(bad)),
                    Err(HlsRequestError::BadDirective(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn other_names_are_unknown() {
        for bad in [
            "seg.m4s",
            "seg-1.m4s",
            "part1.m4s",
            "part1.2.3.m4s",
            "index.m3u",
            "../x",
            "seg99999999999999999999999.m4s",
        ] {
            assert!(
                matches!(
                    HlsFile::parse(bad, None),
                    Err(HlsRequestError::UnknownFile(_))
                ),
                "{bad}"
            );
        }
    }
}
