//! The OData subset Graph accepts on users, parsed and evaluated: `$filter` with `eq`, `ne`,
//! `in`, `startsWith`, `endsWith`, `not`, `and`, `or`, parentheses and
//! `proxyAddresses/any(x:x eq '...')`; string literals with doubled single quotes.
//!
//! Comparisons of UPN and mail are case-insensitive, as Graph's are, folded as hardmatch
//! folds them ([`caseless`]: how Graph folds letters outside ASCII is INFERRED).

use crate::tenant::{caseless, User};

/// A parsed `$filter` expression.
#[derive(Clone, Debug, PartialEq)]
pub enum Filter {
    Eq(Property, Option<String>),
    Ne(Property, Option<String>),
    In(Property, Vec<String>),
    StartsWith(Property, String),
    EndsWith(Property, String),
    AnyProxyEq(String),
    Not(Box<Filter>),
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Property {
    Id,
    UserPrincipalName,
    Mail,
    DisplayName,
    OnPremisesImmutableId,
}

impl Property {
    fn parse(name: &str) -> Option<Property> {
        match name.to_ascii_lowercase().as_str() {
            "id" => Some(Property::Id),
            "userprincipalname" => Some(Property::UserPrincipalName),
            "mail" => Some(Property::Mail),
            "displayname" => Some(Property::DisplayName),
            "onpremisesimmutableid" => Some(Property::OnPremisesImmutableId),
            _ => None,
        }
    }

    fn value(self, user: &User) -> Option<&str> {
        match self {
            Property::Id => Some(&user.id),
            Property::UserPrincipalName => Some(&user.user_principal_name),
            Property::Mail => user.mail.as_deref(),
            Property::DisplayName => user.display_name.as_deref(),
            Property::OnPremisesImmutableId => user.on_premises_immutable_id.as_deref(),
        }
    }

    /// The ImmutableId is case-sensitive (docs/graph.md); names and addresses are not.
    fn equal(self, a: &str, b: &str) -> bool {
        match self {
            Property::OnPremisesImmutableId => a == b,
            // ASCII folds without an allocation: a lookup compares every user of the tenant.
            _ if a.is_ascii() && b.is_ascii() => a.eq_ignore_ascii_case(b),
            _ => caseless(a) == caseless(b),
        }
    }
}

impl Filter {
    pub(crate) fn matches(&self, user: &User) -> bool {
        match self {
            Filter::Eq(p, v) => match (p.value(user), v) {
                (Some(a), Some(b)) => p.equal(a, b),
                (None, None) => true,
                _ => false,
            },
            Filter::Ne(p, v) => !Filter::Eq(*p, v.clone()).matches(user),
            Filter::In(p, values) => p
                .value(user)
                .is_some_and(|a| values.iter().any(|b| p.equal(a, b))),
            Filter::StartsWith(p, prefix) => p
                .value(user)
                .is_some_and(|a| caseless(a).starts_with(&caseless(prefix))),
            Filter::EndsWith(p, suffix) => p
                .value(user)
                .is_some_and(|a| caseless(a).ends_with(&caseless(suffix))),
            Filter::AnyProxyEq(address) => user
                .proxy_addresses
                .iter()
                .any(|p| caseless(p) == caseless(address)),
            Filter::Not(inner) => !inner.matches(user),
            Filter::And(a, b) => a.matches(user) && b.matches(user),
            Filter::Or(a, b) => a.matches(user) || b.matches(user),
        }
    }

    /// Whether Graph calls this an advanced query (needs `ConsistencyLevel: eventual` and
    /// `$count=true`): `ne`, `not` and `endsWith` are.
    pub(crate) fn advanced_operator(&self) -> Option<&'static str> {
        match self {
            Filter::Ne(..) => Some("ne"),
            Filter::EndsWith(..) => Some("endsWith"),
            Filter::Not(..) => Some("not"),
            Filter::And(a, b) | Filter::Or(a, b) => {
                a.advanced_operator().or_else(|| b.advanced_operator())
            }
            _ => None,
        }
    }
}

/// Parses a `$filter` value (already percent-decoded).
pub fn parse(text: &str) -> Result<Filter, String> {
    let tokens = tokenize(text)?;
    let mut parser = Parser { tokens, pos: 0 };
    let filter = parser.or()?;
    if parser.pos != parser.tokens.len() {
        return Err(format!("unexpected {:?}", parser.tokens[parser.pos]));
    }
    Ok(filter)
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Word(String),
    Str(String),
    Open,
    Close,
    Comma,
    Colon,
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            c if c.is_whitespace() => i += 1,
            '(' => (tokens.push(Token::Open), i += 1).1,
            ')' => (tokens.push(Token::Close), i += 1).1,
            ',' => (tokens.push(Token::Comma), i += 1).1,
            ':' => (tokens.push(Token::Colon), i += 1).1,
            '\'' => {
                // A literal; '' inside it is one quote.
                let mut value = String::new();
                i += 1;
                loop {
                    match (chars.get(i), chars.get(i + 1)) {
                        (Some('\''), Some('\'')) => {
                            value.push('\'');
                            i += 2;
                        }
                        (Some('\''), _) => {
                            i += 1;
                            break;
                        }
                        (Some(c), _) => {
                            value.push(*c);
                            i += 1;
                        }
                        (None, _) => return Err("unterminated string literal".into()),
                    }
                }
                tokens.push(Token::Str(value));
            }
            _ => {
                let start = i;
                while i < chars.len() && !chars[i].is_whitespace() && !"(),:'".contains(chars[i]) {
                    i += 1;
                }
                tokens.push(Token::Word(chars[start..i].iter().collect()));
            }
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek_word(&self, word: &str) -> bool {
        matches!(self.tokens.get(self.pos), Some(Token::Word(w)) if w.eq_ignore_ascii_case(word))
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        token
    }

    fn expect(&mut self, token: Token) -> Result<(), String> {
        match self.next() {
            Some(t) if t == token => Ok(()),
            other => Err(format!("expected {token:?}, found {other:?}")),
        }
    }

    fn or(&mut self) -> Result<Filter, String> {
        let mut left = self.and()?;
        while self.peek_word("or") {
            self.pos += 1;
            left = Filter::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Filter, String> {
        let mut left = self.unary()?;
        while self.peek_word("and") {
            self.pos += 1;
            left = Filter::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Filter, String> {
        if self.peek_word("not") {
            self.pos += 1;
            return Ok(Filter::Not(Box::new(self.unary()?)));
        }
        if self.tokens.get(self.pos) == Some(&Token::Open) {
            self.pos += 1;
            let inner = self.or()?;
            self.expect(Token::Close)?;
            return Ok(inner);
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Filter, String> {
        let Some(Token::Word(word)) = self.next() else {
            return Err("expected a property or function".into());
        };
        let lower = word.to_ascii_lowercase();
        if lower == "startswith" || lower == "endswith" {
            self.expect(Token::Open)?;
            let property = self.property()?;
            self.expect(Token::Comma)?;
            let value = self.string()?;
            self.expect(Token::Close)?;
            return Ok(if lower == "startswith" {
                Filter::StartsWith(property, value)
            } else {
                Filter::EndsWith(property, value)
            });
        }
        if lower == "proxyaddresses/any" {
            // proxyAddresses/any(x:x eq 'smtp:a@b.com')
            self.expect(Token::Open)?;
            let Some(Token::Word(var)) = self.next() else {
                return Err("expected a lambda variable".into());
            };
            self.expect(Token::Colon)?;
            match self.next() {
                Some(Token::Word(w)) if w == var => {}
                other => return Err(format!("expected {var}, found {other:?}")),
            }
            if !self.peek_word("eq") {
                return Err("only eq is supported inside any()".into());
            }
            self.pos += 1;
            let value = self.string()?;
            self.expect(Token::Close)?;
            return Ok(Filter::AnyProxyEq(value));
        }
        let property = Property::parse(&word)
            .ok_or_else(|| format!("property '{word}' is not supported in a filter"))?;
        let Some(Token::Word(op)) = self.next() else {
            return Err("expected an operator".into());
        };
        match op.to_ascii_lowercase().as_str() {
            "eq" => Ok(Filter::Eq(property, self.literal()?)),
            "ne" => Ok(Filter::Ne(property, self.literal()?)),
            "in" => {
                self.expect(Token::Open)?;
                let mut values = vec![self.string()?];
                while self.tokens.get(self.pos) == Some(&Token::Comma) {
                    self.pos += 1;
                    values.push(self.string()?);
                }
                self.expect(Token::Close)?;
                Ok(Filter::In(property, values))
            }
            other => Err(format!("operator '{other}' is not supported")),
        }
    }

    fn property(&mut self) -> Result<Property, String> {
        match self.next() {
            Some(Token::Word(w)) => {
                Property::parse(&w).ok_or_else(|| format!("property '{w}' is not supported"))
            }
            other => Err(format!("expected a property, found {other:?}")),
        }
    }

    fn string(&mut self) -> Result<String, String> {
        match self.next() {
            Some(Token::Str(s)) => Ok(s),
            other => Err(format!("expected a string literal, found {other:?}")),
        }
    }

    /// A string literal or `null`.
    fn literal(&mut self) -> Result<Option<String>, String> {
        if self.peek_word("null") {
            self.pos += 1;
            return Ok(None);
        }
        self.string().map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(upn: &str, anchor: Option<&str>) -> User {
        User {
            id: "1".into(),
            user_principal_name: upn.into(),
            mail: Some(upn.into()),
            on_premises_immutable_id: anchor.map(Into::into),
            proxy_addresses: vec![format!("SMTP:{upn}")],
            ..User::default()
        }
    }

    #[test]
    fn the_filters_hardmatch_sends() {
        let kate = user("kate.o'brien@contoso.com", Some("AbC=="));
        let yes = [
            "userPrincipalName eq 'KATE.O''BRIEN@contoso.com'",
            "userPrincipalName in ('x@y.com', 'kate.o''brien@contoso.com')",
            "onPremisesImmutableId eq 'AbC=='",
            "startsWith(userPrincipalName,'kate')",
            "proxyAddresses/any(x:x eq 'smtp:kate.o''brien@contoso.com')",
            "not (mail eq 'a@b.com') and endsWith(mail,'contoso.com')",
        ];
        for filter in yes {
            assert!(parse(filter).unwrap().matches(&kate), "{filter}");
        }
        assert!(
            !parse("onPremisesImmutableId eq 'abc=='")
                .unwrap()
                .matches(&kate),
            "case-sensitive"
        );
        assert!(parse("userPrincipalName eq 'x' or").is_err());
        assert!(parse("userPrincipalName eq 'unterminated").is_err());
        assert_eq!(
            parse("mail ne 'x'").unwrap().advanced_operator(),
            Some("ne")
        );
        assert_eq!(parse("mail eq 'x'").unwrap().advanced_operator(), None);
    }

    #[test]
    fn a_hostile_literal_stays_a_literal() {
        let f = parse("userPrincipalName eq 'x'' or userPrincipalName ne ''y'").unwrap();
        assert_eq!(
            f,
            Filter::Eq(
                Property::UserPrincipalName,
                Some("x' or userPrincipalName ne 'y".into())
            )
        );
    }
}
