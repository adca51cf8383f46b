//! Text helpers for messages quoting other programs' answers.

/// `text` cut to at most `max` bytes at a char boundary, with how many
/// bytes were cut off; `None` if it fits.
pub fn cut(text: &str, max: usize) -> Option<(&str, usize)> {
    if text.len() <= max {
        return None;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Some((&text[..end], text.len() - end))
}
