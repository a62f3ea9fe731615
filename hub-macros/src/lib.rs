//! Procedural macros for `hub-runtime`: `#[hub_client]` and `#[hub]`.

use proc_macro::TokenStream;

/// Placeholder: being written.
#[proc_macro_attribute]
pub fn hub_client(_attr: TokenStream, item: TokenStream) -> TokenStream {
    item
}

/// Placeholder: being written.
#[proc_macro_attribute]
pub fn hub(_attr: TokenStream, item: TokenStream) -> TokenStream {
    item
}
