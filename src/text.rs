//! Text that users write and other users read (nicknames, meeting titles, contents, locations),
//! and text a client sends that the operator reads (the user agent). Some characters make text
//! lie about itself: bidi controls reorder what follows (`abc\u{202E}gnp.exe` reads as
//! `abcexe.png`), a byte order mark or a noncharacter has no business inside a text, and a name
//! made only of zero-width characters shows as nothing. `check_user_text` is the one rule every
//! user text goes through; `clean_for_display` takes the same characters out of text that is
//! shown rather than refused.

/// Bidirectional formatting characters: each changes how the text around it is ordered.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Unicode's noncharacters: U+FDD0..U+FDEF and the last two code points of every plane.
fn is_noncharacter(c: char) -> bool {
    let c = u32::from(c);
    (0xFDD0..=0xFDEF).contains(&c) || c & 0xFFFE == 0xFFFE
}

/// Characters that take no room and show nothing on their own. They are allowed inside text
/// (a zero-width joiner builds emoji sequences such as 👨‍👩‍👧, a variation selector picks an
/// emoji's form), but a text of nothing else is invisible.
fn is_invisible(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{034F}'
                | '\u{115F}'
                | '\u{1160}'
                | '\u{17B4}'
                | '\u{17B5}'
                | '\u{180E}'
                | '\u{200B}'..='\u{200D}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2800}'
                | '\u{3164}'
                | '\u{FE00}'..='\u{FE0F}'
                | '\u{FFA0}'
                | '\u{E0100}'..='\u{E01EF}'
        )
}

/// Characters refused anywhere in a user text, besides control characters (which each field
/// rules on itself: a meeting's content may hold line breaks).
fn is_deceptive(c: char) -> bool {
    is_bidi_control(c) || c == '\u{FEFF}' || is_noncharacter(c)
}

/// Why a user text is refused, for a 402 that names the field.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum TextProblem {
    /// A bidi control, U+FEFF or a noncharacter.
    Deceptive(char),
    /// Nothing would be seen: empty, or only whitespace and zero-width characters.
    Invisible,
}

impl TextProblem {
    /// The 402 message for the field `name`.
    pub(crate) fn message(&self, name: &str) -> String {
        match self {
            TextProblem::Deceptive(c) => format!(
                "{name} must not contain U+{:04X} (bidi controls, U+FEFF and noncharacters \
                 change or hide how text reads)",
                u32::from(*c)
            ),
            TextProblem::Invisible => format!(
                "{name} must contain visible characters, not only spaces or zero-width characters"
            ),
        }
    }
}

/// The rule for every text one user writes and others see.
pub(crate) fn check_user_text(text: &str) -> Result<(), TextProblem> {
    if let Some(c) = text.chars().find(|c| is_deceptive(*c)) {
        return Err(TextProblem::Deceptive(c));
    }
    if text.chars().all(is_invisible) {
        return Err(TextProblem::Invisible);
    }
    Ok(())
}

/// `text` without control characters, bidi controls, U+FEFF, noncharacters and zero-width
/// characters: for text shown to someone who did not write it and that is not refused (a user
/// agent on the status page).
pub(crate) fn clean_for_display(text: &str) -> impl Iterator<Item = char> + '_ {
    text.chars().filter(|c| {
        !(c.is_control() || is_deceptive(*c) || (is_invisible(*c) && !c.is_whitespace()))
    })
}

/// How much of an upstream's text (WeChat's `errmsg`, a body it could not parse) reaches a log
/// line: enough to read the message, not enough for a server to fill the log.
pub(crate) const MAX_LOGGED_UPSTREAM_BYTES: usize = 300;

/// Text an upstream sent, made safe for one log line: control characters (a newline would start
/// a forged line), bidi controls and the other characters `check_user_text` refuses are written
/// as `\u{..}` escapes, and the result is cut to `MAX_LOGGED_UPSTREAM_BYTES`, saying how much
/// was left out. Every upstream text goes through this before it can reach a log.
pub(crate) fn loggable_upstream_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_LOGGED_UPSTREAM_BYTES + 32));
    for (at, c) in text.char_indices() {
        let escaped;
        let piece = if c.is_control() || is_deceptive(c) || (is_invisible(c) && c != ' ') {
            escaped = c.escape_unicode().to_string();
            escaped.as_str()
        } else {
            &text[at..at + c.len_utf8()]
        };
        if out.len() + piece.len() > MAX_LOGGED_UPSTREAM_BYTES {
            out.push_str(&format!("…[{} more bytes]", text.len() - at));
            return out;
        }
        out.push_str(piece);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_text_is_one_bounded_line() {
        assert_eq!(
            loggable_upstream_text("invalid code\nFAKE 200 login ok\u{202E}x"),
            "invalid code\\u{a}FAKE 200 login ok\\u{202e}x"
        );
        assert_eq!(
            loggable_upstream_text("系统繁忙, rid: 1"),
            "系统繁忙, rid: 1"
        );
        let long = "错".repeat(10_000);
        let logged = loggable_upstream_text(&long);
        assert!(
            logged.len() <= MAX_LOGGED_UPSTREAM_BYTES + 32,
            "{}",
            logged.len()
        );
        assert!(
            logged.ends_with(&format!("…[{} more bytes]", 30_000 - 300)),
            "{logged}"
        );
    }

    #[test]
    fn bidi_controls_bom_and_noncharacters_are_refused() {
        for bad in [
            "abc\u{202E}gnp.exe",
            "\u{200E}name",
            "name\u{200F}",
            "a\u{202A}b",
            "a\u{2066}b\u{2069}",
            "\u{FEFF}name",
            "a\u{FDD0}",
            "a\u{FFFE}",
            "a\u{1FFFF}",
        ] {
            assert!(
                matches!(check_user_text(bad), Err(TextProblem::Deceptive(_))),
                "{bad:?}"
            );
        }
        assert_eq!(
            TextProblem::Deceptive('\u{202E}').message("nickName"),
            "nickName must not contain U+202E (bidi controls, U+FEFF and noncharacters change \
             or hide how text reads)"
        );
    }

    #[test]
    fn text_of_only_invisible_characters_is_refused_and_emoji_sequences_stay() {
        for invisible in [
            "",
            "\u{200B}\u{200B}\u{200B}\u{200B}",
            "\u{200C}",
            "\u{200D}",
            "\u{2060} \u{200B}",
            "\u{3164}",
            "\u{FE0F}",
        ] {
            assert_eq!(
                check_user_text(invisible),
                Err(TextProblem::Invisible),
                "{invisible:?}"
            );
        }
        for fine in [
            "小明",
            "👨\u{200D}👩\u{200D}👧",
            "🏳\u{FE0F}\u{200D}🌈",
            "a\u{200B}b",
            "Zoë",
        ] {
            assert_eq!(check_user_text(fine), Ok(()), "{fine:?}");
        }
    }

    #[test]
    fn display_cleaning_takes_out_what_checking_refuses() {
        let cleaned: String =
            clean_for_display("Mozilla\u{202E}gnp\u{200B}\u{FEFF}\n 5.0\u{FFFF}").collect();
        assert_eq!(cleaned, "Mozillagnp 5.0");
    }
}
