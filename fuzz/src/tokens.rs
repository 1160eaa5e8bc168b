//! `nextToken`: any string a client sends is a cursor this gateway sealed for this user
//! and query, or a 400; never a panic, never another user's page.

use shared::usage::token::TokenKey;

pub fn page_tokens(data: &[u8]) {
    let key = TokenKey::new(b"fuzz page-token key");
    let text = String::from_utf8_lossy(data);
    // Forged: only a token sealed here opens (the tag is an HMAC the fuzzer cannot make).
    if let Ok(cursor) = key.open("alice", "provider=openai", &text)
        && key.seal("alice", "provider=openai", &cursor) != text
    {
        panic!("a token not sealed here opened to {cursor:?}");
    }
    // Sealed: any cursor comes back whole, and only for its own user and query.
    let token = key.seal("alice", "provider=openai", &text);
    match key.open("alice", "provider=openai", &token) {
        Ok(cursor) if cursor == text => {}
        other => panic!("a sealed cursor did not come back: {other:?}"),
    }
    if key.open("bob", "provider=openai", &token).is_ok() {
        panic!("alice's token opened for bob");
    }
    if key.open("alice", "provider=anthropic", &token).is_ok() {
        panic!("a token opened for another query");
    }
}
