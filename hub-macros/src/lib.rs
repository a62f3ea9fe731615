//! Procedural macros for `hub-runtime`: `#[hub_client]` and `#[hub]`.
//!
//! A Rust trait is the contract between a hub and its clients, as `IClock`
//! is in ASP.NET Core's "SignalR in background services" sample:
//!
//! ```
//! use hub_runtime::{hub, hub_client, CallContext, HubError, Timestamp};
//!
//! #[hub_client]
//! pub trait IClock {
//!     /// Fire-and-forget: the server sends, the client runs it.
//!     async fn show_time(&self, now: Timestamp);
//!     /// A client result: the server awaits the client's answer.
//!     async fn confirm(&self, question: String) -> bool;
//! }
//!
//! pub struct ClockHub;
//!
//! #[hub(client = IClock)]
//! impl ClockHub {
//!     async fn get_time(&self) -> Timestamp {
//!         Timestamp::now()
//!     }
//!
//!     async fn ask(&self, ctx: CallContext<Self>, question: String) -> Result<bool, HubError> {
//!         ctx.clients().caller().confirm(question).await
//!     }
//! }
//! ```
//!
//! These macros only parse and generate calls: the logic (lookup, errors,
//! completions) is in `hub-runtime`. Generated code names everything
//! through `::hub_runtime::__private`, found even when the dependency is
//! renamed in `Cargo.toml` (or given with `crate = path`), and compiles
//! under `#![no_implicit_prelude]`.
//!
//! Errors are reported all at once, each at the code that causes it.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::quote;
use syn::{Item, Path};

mod errors;
mod names;
mod parse;
mod parse_authorize;
mod parse_server;
mod render_authorize;
mod render_client;
mod render_hub;
mod render_proxy;
mod render_server_trait;
mod render_typescript;

use errors::Errors;

/// Turns a trait into the contract of a hub's clients.
///
/// Every method is an `async fn` taking `&self` and serializable arguments
/// by value:
///
/// * `async fn m(&self, args…)` — the server sends it and forgets (a
///   broadcast is possible);
/// * `async fn m(&self, args…) -> T` — a *client result*: the server invokes
///   one client and awaits `T`.
///
/// The wire name of a method is the PascalCase of its Rust name
/// (`show_time` → `ShowTime`); `#[hub_method(name = "showTime")]` sets
/// another. Wire names are compared case-insensitively and must be unique.
/// Argument and result types go through serde: each must be
/// `Serialize + DeserializeOwned + Send + Sync + 'static`, checked at
/// compile time at the type.
///
/// # Options
///
/// * `#[hub_client(crate = path)]` — where `hub-runtime` is, when it cannot
///   be found in `Cargo.toml` (e.g. re-exported by another crate).
/// * `#[hub_client(typescript)]` — the contract describes itself for the
///   TypeScript generator (`hub_runtime::typescript`, feature `typescript`):
///   every argument and result type must implement `ts_rs::TS`.
///
/// # Generated items
///
/// For `pub trait IClock` (the names follow the trait's):
///
/// * the trait, each `async fn` rewritten to
///   `fn m(&self, args…) -> impl Future<Output = T> + Send` (implementors
///   still write `async fn`; the futures are `Send` so they can be
///   spawned), plus the provided method
///   `fn into_handlers(self) -> ClientHandlers` — the client-side glue that
///   registers an implementation with a client connection;
/// * `pub enum IClockContract {}`, the `ClientContract` that a hub names
///   with `#[hub(client = IClock)]`;
/// * `pub struct IClockBroadcast(BroadcastTarget)` — the proxy over many
///   connections (`all()`, `group(…)`, `others()`): only the methods without
///   a return value, each `async fn m(&self, args…) -> Result<(), HubError>`.
///   A client result cannot be awaited from many clients, so calling such a
///   method on `all()` does not compile;
/// * `pub struct IClockSingle(SingleTarget)` — the proxy over one connection
///   (`client(id)`, `caller()`): every method; those with `-> T` return
///   `Result<T, HubError>` once the client has answered.
///
/// # Example
///
/// ```
/// use hub_runtime::{Timestamp, hub_client};
///
/// #[hub_client]
/// pub trait IClock {
///     async fn show_time(&self, now: Timestamp);
///     async fn confirm(&self, question: String) -> bool;
/// }
/// ```
///
/// generates (paths shortened; everything is named through
/// `::hub_runtime::__private` in reality):
///
/// ```text
/// pub trait IClock {
///     fn show_time(&self, now: Timestamp) -> impl Future<Output = ()> + Send;
///     fn confirm(&self, question: String) -> impl Future<Output = bool> + Send;
///
///     fn into_handlers(self) -> ClientHandlers
///     where
///         Self: Sized + Send + Sync + 'static,
///     {
///         let client = Arc::new(self);
///         let mut handlers = ClientHandlers::new();
///         handlers.insert("ShowTime", 1, client_method(&client, |client: Arc<Self>, arguments| async move {
///             let now: Timestamp = arguments.bind(0)?;
///             <Self as IClock>::show_time(&*client, now).await;
///             Ok(None)
///         }));
///         handlers.insert("Confirm", 1, client_method(&client, |client: Arc<Self>, arguments| async move {
///             let question: String = arguments.bind(0)?;
///             Ok(Some(Payload::from_value(<Self as IClock>::confirm(&*client, question).await)))
///         }));
///         handlers
///     }
/// }
///
/// pub enum IClockContract {}
///
/// impl ClientContract for IClockContract {
///     type Broadcast = IClockBroadcast;
///     type Single = IClockSingle;
/// }
///
/// pub struct IClockBroadcast(BroadcastTarget);
///
/// impl IClockBroadcast {
///     pub async fn show_time(&self, now: Timestamp) -> Result<(), HubError> {
///         self.0.send("ShowTime", vec![Payload::from_value(now)]).await
///     }
/// }
///
/// pub struct IClockSingle(SingleTarget);
///
/// impl IClockSingle {
///     pub async fn show_time(&self, now: Timestamp) -> Result<(), HubError> {
///         self.0.send("ShowTime", vec![Payload::from_value(now)]).await
///     }
///
///     pub async fn confirm(&self, question: String) -> Result<bool, HubError> {
///         self.0.invoke::<bool>("Confirm", vec![Payload::from_value(question)]).await
///     }
/// }
/// // + `From<BroadcastTarget>`, `From<SingleTarget>`, `Clone`, and
/// //   compile-time checks of the argument and result types.
/// ```
#[proc_macro_attribute]
pub fn hub_client(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let (options, item) = match contract_trait(
        attr,
        item,
        "hub_client",
        "pub trait IClock { async fn show_time(&self, now: Timestamp); }",
        &mut errors,
    ) {
        Ok(found) => found,
        Err(tokens) => return tokens,
    };
    let model = parse::parse_client_trait(item, &mut errors);
    if !errors.is_empty() {
        let item = &model.item;
        return with_errors(quote!(#item), &errors);
    }
    let private = private_path(options.krate);
    let rewritten = render_client::render_trait(&model, &private);
    let proxies = render_proxy::render_proxies(&model, &private);
    let typescript = options
        .typescript
        .map(|_| render_typescript::render_client(&model, &private));
    quote! {
        #rewritten
        #proxies
        #typescript
    }
    .into()
}

/// Turns a trait into the contract of a hub's own methods: what clients
/// invoke, shared by the hub and its Rust clients (the counterpart of
/// `#[hub_client]`).
///
/// ```
/// use futures_util::Stream;
/// use hub_runtime::hub::UploadStream;
/// use hub_runtime::{CallContext, HubError, Timestamp, hub_server};
///
/// #[hub_server]
/// pub trait IClockHub {
///     /// The server's time.
///     async fn get_time(&self) -> Timestamp;
///     /// `count` ticks, one a second: a server-to-client stream.
///     async fn ticks(&self, count: u32) -> impl Stream<Item = Timestamp>;
///     /// An upload stream from the client.
///     async fn sum(&self, numbers: UploadStream<i64>) -> Result<i64, HubError>;
///     /// Fire-and-forget: the client does not wait.
///     #[hub_method(send)]
///     async fn ping(&self, ctx: &CallContext<Self>, note: String);
/// }
/// ```
///
/// Methods are written as in a `#[hub]` impl block (see [`macro@hub`]):
/// `async fn`, `&self` or `self: Arc<Self>`, arguments by value, an
/// optional `CallContext<Self>` / `&CallContext<Self>` (not on the wire;
/// the method then requires `Self: Hub`), `UploadStream<T>` parameters,
/// results `T` or `Result<T, HubError>`, streams `impl Stream<Item = T>`
/// (or `Item = Result<T, HubError>`, `BoxStream<'static, T>`, `Result<S,
/// HubError>`). `#[hub_method(name = "...")]` sets a wire name,
/// `#[hub_method(stream)]` marks a stream the macro cannot recognize, and
/// `#[hub_method(send)]` makes a method without a result fire-and-forget:
/// clients send it without waiting (no result, no error comes back).
///
/// # Options
///
/// * `crate = path` — where `hub-runtime` is, as for `#[hub_client]`;
/// * `typescript` — the contract describes itself for the TypeScript
///   generator (`hub_runtime::typescript`, feature `typescript`): every
///   argument and result type must implement `ts_rs::TS`.
///
/// # Generated items
///
/// For `pub trait IClockHub`:
///
/// * the trait, each `async fn` rewritten to return
///   `impl Future<Output = T> + Send` (`impl Stream` results also get
///   `+ Send`); the hub implements it with `async fn`s, under
///   `#[hub(client = IClock)] impl IClockHub for ClockHub { … }`, which
///   generates `impl Hub` from the trait (lifecycle hooks `on_connected` /
///   `on_disconnected` may be written in that block too);
/// * `pub enum IClockHubContract {}`: the method table and dispatch
///   (`ServerContract<H>`) for any hub `H` implementing the trait;
/// * `pub struct IClockHubProxy`: the typed client-side proxy,
///   `connection.hub::<IClockHubProxy>()`, with one method per hub method:
///   `get_time(&self) -> impl Future<Output = Result<Timestamp, HubError>>`,
///   `ticks(&self, count: u32) -> Result<ItemStream<Timestamp>, HubError>`,
///   `sum(&self, numbers: impl Stream<Item = i64> + Send + 'static) -> …`,
///   `ping(&self, note: String)` (sent, not invoked). The futures are
///   `Send + 'static`: a call can be spawned.
#[proc_macro_attribute]
pub fn hub_server(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let (options, item) = match contract_trait(
        attr,
        item,
        "hub_server",
        "pub trait IClockHub { async fn get_time(&self) -> Timestamp; }",
        &mut errors,
    ) {
        Ok(found) => found,
        Err(tokens) => return tokens,
    };
    let model = parse_server::parse_server_trait(item, &mut errors);
    if !errors.is_empty() {
        let item = &model.item;
        return with_errors(quote!(#item), &errors);
    }
    let private = private_path(options.krate);
    let generated = render_server_trait::render_server_trait(&model, &private);
    let typescript = options
        .typescript
        .map(|_| render_typescript::render_server(&model, &private));
    quote! {
        #generated
        #typescript
    }
    .into()
}

/// Makes the `async fn`s of an inherent `impl` block the methods of a hub.
///
/// `#[hub(client = IClock)]` names the `#[hub_client]` trait of the clients
/// the hub calls (any path; `IClock` stands for the generated
/// `IClockContract` next to it).
///
/// # Names of the generated items
///
/// The macros name what they generate after the trait, with a suffix, in
/// the trait's module and with its visibility:
///
/// | trait | generated |
/// |---|---|
/// | `#[hub_client] trait IClock` | `IClockContract`, `IClockBroadcast`, `IClockSingle` |
/// | `#[hub_server] trait IClockHub` | `IClockHubContract`, `IClockHubProxy` |
///
/// The trait's own documentation lists them (with links), so rustdoc and
/// the IDE show them where the trait is. `#[hub(client = path::IClock)]`
/// and `impl path::IClockHub for …` name the contracts through the same
/// path (`path::IClockContract`): import the module, or the contracts next
/// to the traits (`use contracts::{IClock, IClockContract}`). Given a hub
/// type, `hub_runtime::ClientOf<ClockHub>` (that is,
/// `<ClockHub as Hub>::Client`) is its client contract, without the
/// suffix: `HubClients<ClientOf<ClockHub>>` is what `clients()` returns.
///
/// Every `async fn` of the block, public or not, is a method clients invoke
/// under its wire name: the PascalCase of its Rust name (`get_time` →
/// `GetTime`), or the one set with `#[hub_method(name = "...")]`. Every
/// method takes `&self` (or `self: Arc<Self>`) and its arguments by value;
/// it returns `T` or `Result<T, HubError>` for any serializable `T`,
/// `()` included. An error returned as `HubError` reaches the caller.
///
/// * A parameter of type `CallContext<Self>` or `&CallContext<Self>`, in any
///   position, is not a wire argument: it receives the caller's context
///   (`ctx.clients().caller()`, `others()`, `groups()`, `connection_id()`).
/// * `async fn on_connected(&self, ctx: CallContext<Self>) -> Result<(), HubError>`
///   and `async fn on_disconnected(&self, ctx: CallContext<Self>, error: Option<HubError>)`
///   are the lifecycle hooks `Hub::on_connected` / `Hub::on_disconnected`,
///   not wire methods (the context parameter is optional).
/// * A function that is not `async` is an error; mark helpers that are no hub
///   methods with `#[hub_method(skip)]` (this works on `async fn`s too).
///
/// # Streams
///
/// * **Server to client.** A method whose return type is written as a
///   stream — `impl Stream<Item = T>`, `Pin<Box<dyn Stream<Item = T> + Send>>`,
///   `BoxStream<'_, T>`, or any of these inside `Result<…, HubError>` — is a
///   streaming method (`MethodKind::ServerStream`): clients call it with
///   `connection.stream(…)` (a StreamInvocation), each item becomes a
///   StreamItem and the end a Completion. Items are `T: Serialize`, or
///   `Result<T, HubError>`: an `Err` ends the stream with that error. When
///   the type does not show the stream (a type alias), mark the method
///   `#[hub_method(stream)]`. The stream may borrow `&self` and the
///   context; the client's CancelInvocation drops it at once.
/// * **Client to server.** A parameter `name: UploadStream<T>` is an upload
///   stream: not a wire argument but one of the invocation's `streamIds`,
///   bound in order. It yields `Result<T, HubError>` items and ends when the
///   client completes the stream.
///
/// ```
/// use futures_util::{Stream, StreamExt as _};
/// use hub_runtime::hub::UploadStream;
/// use hub_runtime::{HubError, hub, hub_client};
///
/// #[hub_client]
/// pub trait IClock {
///     async fn show_time(&self, now: hub_runtime::Timestamp);
/// }
///
/// pub struct ClockHub;
///
/// #[hub(client = IClock)]
/// impl ClockHub {
///     async fn counter(&self, count: i64) -> impl Stream<Item = i64> {
///         futures_util::stream::iter(0..count)
///     }
///     async fn sum(&self, mut numbers: UploadStream<i64>) -> Result<i64, HubError> {
///         let mut total = 0;
///         while let Some(n) = numbers.next().await { total += n?; }
///         Ok(total)
///     }
/// }
/// ```
///
/// # On an implementation of a `#[hub_server]` trait
///
/// `#[hub(client = IClock)] impl IClockHub for ClockHub { … }` takes the
/// hub's methods, wire names and signatures from the trait (the contract
/// shared with clients) and dispatches through the generated
/// `IClockHubContract`. `on_connected` / `on_disconnected` may be written
/// in the block too: they are moved out of the trait impl into `impl Hub`.
///
/// # Options
///
/// * `client = path` (required) — the `#[hub_client]` trait;
/// * `crate = path` — where `hub-runtime` is, when it cannot be found in
///   `Cargo.toml`.
///
/// # Generated items
///
/// The block is kept as written (minus the `#[hub_method]` attributes), and
/// `impl Hub` is added:
///
/// ```text
/// pub struct ClockHub;
///
/// #[hub(client = IClock)]
/// impl ClockHub {
///     async fn get_time(&self) -> Timestamp { Timestamp::now() }
///     async fn add(&self, ctx: &CallContext<Self>, a: i32, b: i32) -> Result<i32, HubError> { … }
/// }
/// ```
///
/// generates (paths shortened, as above):
///
/// ```text
/// impl Hub for ClockHub {
///     type Client = IClockContract;
///
///     const METHODS: &'static [MethodDescriptor] = &[
///         MethodDescriptor::unary("GetTime", 0),
///         MethodDescriptor::unary("Add", 2),
///     ];
///
///     fn invoke(self: Arc<Self>, method: usize, call: HubCall<Self>)
///         -> BoxFuture<'static, Result<MethodOutput, InvocationError>>
///     {
///         Self::invoke_with(self, method, call, BoxMethod)
///     }
///
///     // The server calls this one: `runner` takes each method's future
///     // unboxed (the server keeps it inside its own per-call job).
///     fn invoke_with<R: MethodRunner>(self: Arc<Self>, method: usize, call: HubCall<Self>, runner: R)
///         -> R::Output
///     {
///         match method {
///             0 => run_method(runner, async move {
///                 let out = Self::get_time(&*self).await;
///                 Returned::new(out).into_output()
///             }),
///             1 => run_method(runner, async move {
///                 let a: i32 = call.arguments().bind(0)?;
///                 let b: i32 = call.arguments().bind(1)?;
///                 let out = Self::add(&*self, call.context(), a, b).await;
///                 Returned::new(out).into_output() // `T` or `Result<T, HubError>`
///             }),
///             _ => run_method(runner, unknown_method()),
///         }
///     }
/// }
/// ```
#[proc_macro_attribute]
pub fn hub(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let options = parse::parse_options(attr.into(), "hub", &["client", "crate"], &mut errors);
    let item = match syn::parse::<Item>(item) {
        Ok(item) => item,
        Err(error) => return error.to_compile_error().into(),
    };
    let Item::Impl(item) = item else {
        errors.at(
            item_span(&item),
            "`#[hub(client = IClient)]` goes on an inherent impl block: `impl MyHub { async fn … }`",
        );
        return with_errors(quote!(#item), &errors);
    };
    if item.trait_.is_some() {
        return hub_trait_impl(item, options, errors);
    }
    if options.client.is_none() && errors.is_empty() {
        errors.at(
            Span::call_site(),
            "missing `client = …`: name the `#[hub_client]` trait of the clients, \
             e.g. `#[hub(client = IClock)]`",
        );
    }
    let model = parse::parse_hub_impl(item, &mut errors);
    let private = private_path(options.krate);
    let Some(client) = options.client.as_ref().filter(|_| errors.is_empty()) else {
        let mut item = model.item;
        quiet_bare_upload_streams(&mut item);
        let stub = hub_stub(&item, options.client.as_ref(), &private);
        return with_errors(quote!(#item #stub), &errors);
    };
    render_hub::render_hub(&model, client, &private).into()
}

/// The `impl Hub` emitted beside the errors of a `#[hub]` block: without
/// it, every `CallContext<Self>` of the block would add "the trait bound
/// `MyHub: Hub` is not satisfied" under the error that says what to fix.
/// It has no methods: the program does not compile anyway.
fn hub_stub(item: &syn::ItemImpl, client: Option<&Path>, private: &TokenStream2) -> TokenStream2 {
    let self_ty = &item.self_ty;
    let (impl_generics, _, where_clause) = item.generics.split_for_impl();
    let contract = match client {
        Some(client) => {
            let contract = render_hub::contract_path(client);
            quote!(#contract)
        }
        None => quote!(#private::MacroErrorContract),
    };
    quote! {
        impl #impl_generics #private::Hub for #self_ty #where_clause {
            type Client = #contract;
            const METHODS: &'static [#private::MethodDescriptor] = &[];
            fn invoke(
                self: #private::Arc<Self>,
                _: usize,
                _: #private::HubCall<Self>,
            ) -> #private::BoxFuture<
                'static,
                #private::Result<#private::MethodOutput, #private::InvocationError>,
            > {
                #private::unary(async {
                    #private::Err(#private::InvocationError::UnknownMethod)
                })
            }
        }
    }
}

/// A bare `UploadStream` parameter (already reported: "name the item
/// type") becomes `UploadStream<()>` in the emitted block, so that rustc
/// does not report the same mistake a second time.
fn quiet_bare_upload_streams(item: &mut syn::ItemImpl) {
    for member in &mut item.items {
        let syn::ImplItem::Fn(method) = member else {
            continue;
        };
        for input in &mut method.sig.inputs {
            let syn::FnArg::Typed(arg) = input else {
                continue;
            };
            if let syn::Type::Path(path) = &mut *arg.ty
                && let Some(last) = path.path.segments.last_mut()
                && last.ident == "UploadStream"
                && last.arguments.is_none()
            {
                last.arguments = syn::PathArguments::AngleBracketed(syn::parse_quote!(<()>));
            }
        }
    }
}

/// Authorization of a hub or of one of its methods, declared and checked
/// by the compiler (ASP.NET Core's `[Authorize]`). Only inside a `#[hub]`:
/// on the `#[hub(client = …)]` impl block (after `#[hub]`) for the whole
/// hub, or on one of its methods.
///
/// * `#[authorize]` — authenticated users only;
/// * `#[authorize(roles("admin", "editor"))]` — a user with one of these
///   roles;
/// * `#[authorize(policy = path::ToPolicy)]` — a type implementing
///   `hub_runtime::authorization::Policy` (or `SyncPolicy`), registered on
///   the server with `HubServerBuilder::policy`; a misspelt path or a type
///   that is no policy does not compile.
///
/// Options combine (`#[authorize(roles("admin"), policy = Owner)]`) and
/// several attributes must all hold. A refused method is answered with
/// `Failed to invoke 'X' because user is unauthorized` (the connection
/// stays open); a refused hub with 401 at negotiate. See
/// `hub_runtime::authorization`.
#[proc_macro_attribute]
pub fn authorize(attr: TokenStream, item: TokenStream) -> TokenStream {
    let attr = TokenStream2::from(attr);
    if parse_authorize::is_checked_marker(&attr) {
        return item;
    }
    let item2 = TokenStream2::from(item.clone());
    let above_hub = syn::parse::<Item>(item).is_ok_and(|item| match item {
        Item::Impl(item) => item.attrs.iter().any(|attr| {
            attr.path()
                .segments
                .last()
                .is_some_and(|segment| segment.ident == "hub")
        }),
        _ => false,
    });
    let span = attr
        .clone()
        .into_iter()
        .next()
        .map_or_else(Span::call_site, |token| token.span());
    let error = parse_authorize::misplaced(span, above_hub);
    quote!(#error #item2).into()
}

/// `#[hub(client = …)]` on `impl ServerTrait for MyHub`.
fn hub_trait_impl(
    item: syn::ItemImpl,
    options: parse::MacroOptions,
    mut errors: Errors,
) -> TokenStream {
    if options.client.is_none() && errors.is_empty() {
        errors.at(
            parse_server::trait_span(&item),
            "missing `client = …`: name the `#[hub_client]` trait of the clients, \
             e.g. `#[hub(client = IClock)]`",
        );
    }
    let model = parse_server::parse_hub_trait_impl(item, &mut errors);
    let Some(client) = options.client.filter(|_| errors.is_empty()) else {
        let item = &model.item;
        let hooks = &model.hooks;
        let self_ty = &item.self_ty;
        return with_errors(quote!(#item impl #self_ty { #(#hooks)* }), &errors);
    };
    let private = private_path(options.krate);
    render_server_trait::render_hub_trait_impl(&model, &client, &private).into()
}

/// The options of a contract attribute (`#[hub_client]`, `#[hub_server]`:
/// `crate`, `typescript`) and the trait it is on; otherwise the tokens that
/// report why not, `example` showing the right form.
fn contract_trait(
    attr: TokenStream,
    item: TokenStream,
    macro_name: &str,
    example: &str,
    errors: &mut Errors,
) -> Result<(parse::MacroOptions, syn::ItemTrait), TokenStream> {
    let options = parse::parse_options(attr.into(), macro_name, &["crate", "typescript"], errors);
    let item =
        syn::parse::<Item>(item).map_err(|error| TokenStream::from(error.to_compile_error()))?;
    match item {
        Item::Trait(item) => Ok((options, item)),
        item => {
            errors.at(
                item_span(&item),
                format!("`#[{macro_name}]` goes on a trait: `{example}`"),
            );
            Err(with_errors(quote!(#item), errors))
        }
    }
}

fn with_errors(item: TokenStream2, errors: &Errors) -> TokenStream {
    let errors = errors.to_compile_errors();
    quote!(#item #errors).into()
}

/// The span of an item's name, for "wrong item" errors (the whole item
/// would underline too much).
fn item_span(item: &Item) -> Span {
    use syn::spanned::Spanned;
    match item {
        Item::Struct(item) => item.ident.span(),
        Item::Enum(item) => item.ident.span(),
        Item::Union(item) => item.ident.span(),
        Item::Fn(item) => item.sig.ident.span(),
        Item::Trait(item) => item.ident.span(),
        Item::Impl(item) => item.self_ty.span(),
        Item::Mod(item) => item.ident.span(),
        Item::Type(item) => item.ident.span(),
        other => other.span(),
    }
}

/// `::<runtime>::__private`: the explicit `crate = path`, else the name
/// under which the user's `Cargo.toml` lists `hub-runtime`, else
/// `::hub_runtime`.
fn private_path(explicit: Option<Path>) -> TokenStream2 {
    if let Some(path) = explicit {
        return quote!(#path::__private);
    }
    let name = match proc_macro_crate::crate_name("hub-runtime") {
        Ok(proc_macro_crate::FoundCrate::Name(name)) => name,
        // Inside hub-runtime's own tests and doctests the crate is an
        // external crate named `hub_runtime`; its library itself does not
        // use the macros.
        Ok(proc_macro_crate::FoundCrate::Itself) | Err(_) => "hub_runtime".to_owned(),
    };
    let ident = syn::Ident::new(&name, Span::call_site());
    quote!(::#ident::__private)
}
