//! Parsing: the attributes' options and the annotated trait or `impl`
//! block, into a model the renderers turn into code.
//!
//! Parsing never stops at the first problem: every error is pushed to an
//! [`Errors`] and reported together, each at the span of what causes it.

use std::collections::HashMap;

use proc_macro2::{Span, TokenStream};
use syn::spanned::Spanned;
use syn::{
    Attribute, FnArg, Ident, ImplItem, ImplItemFn, ItemImpl, ItemTrait, LitStr, Pat, Path,
    ReturnType, Signature, TraitItem, TraitItemFn, Type,
};

use crate::errors::Errors;
use crate::names::pascal_case;
use crate::parse_authorize::{AuthorizeSpec, take_authorize};

/// The helper attribute on methods of both macros.
pub(crate) const METHOD_ATTR: &str = "hub_method";

fn one_of(options: &[&str]) -> String {
    options
        .iter()
        .map(|option| format!("`{option}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

// ---------------------------------------------------------------------------
// Macro options: `#[hub_client(crate = path)]`, `#[hub(client = path, crate = path)]`

/// The options of `#[hub_client(...)]` or `#[hub(...)]`.
#[derive(Default)]
pub(crate) struct MacroOptions {
    /// `crate = path`: where the runtime is, when the macro cannot find it.
    pub(crate) krate: Option<Path>,
    /// `client = path`: the `#[hub_client]` trait a hub calls.
    pub(crate) client: Option<Path>,
    /// `typescript`: the contract describes itself for TypeScript.
    pub(crate) typescript: Option<Span>,
}

/// Parses `key = value, …` for the keys in `allowed` (`crate`, `client`).
pub(crate) fn parse_options(
    tokens: TokenStream,
    macro_name: &str,
    allowed: &[&str],
    errors: &mut Errors,
) -> MacroOptions {
    let mut options = MacroOptions::default();
    let parser = syn::meta::parser(|meta| {
        let key = meta
            .path
            .get_ident()
            .map(ToString::to_string)
            .unwrap_or_default();
        if !allowed.contains(&key.as_str()) {
            return Err(meta.error(format!(
                "unknown option of `#[{macro_name}]`; expected one of: {}",
                one_of(allowed)
            )));
        }
        if key == "typescript" {
            if options.typescript.is_some() {
                return Err(meta.error("`typescript` is given twice"));
            }
            if !meta.input.is_empty() && !meta.input.peek(syn::Token![,]) {
                return Err(meta.error("`typescript` takes no value"));
            }
            options.typescript = Some(meta.path.span());
            return Ok(());
        }
        let slot = match key.as_str() {
            "crate" => &mut options.krate,
            _ => &mut options.client,
        };
        if slot.is_some() {
            return Err(meta.error(format!("`{key}` is given twice")));
        }
        let path: Path = meta.value()?.parse().map_err(|error| {
            syn::Error::new(
                error.span(),
                format!("expected a path: `{key} = path::to::Item`"),
            )
        })?;
        *slot = Some(path);
        Ok(())
    });
    if let Err(error) = syn::parse::Parser::parse2(parser, tokens) {
        errors.push(error);
    }
    options
}

// ---------------------------------------------------------------------------
// `#[hub_method(...)]`

/// The options of one method's `#[hub_method(...)]`.
#[derive(Default)]
pub(crate) struct MethodOptions {
    /// `name = "Wire"`: the wire name instead of the PascalCase default.
    pub(crate) name: Option<LitStr>,
    /// `skip`: not a hub method (only on `#[hub]` impl blocks).
    pub(crate) skip: Option<Span>,
    /// `stream`: a streaming method, whatever its return type looks like
    /// (only on `#[hub]` impl blocks).
    pub(crate) stream: Option<Span>,
    /// `send`: fire-and-forget, the caller does not wait (only in
    /// `#[hub_server]` traits).
    pub(crate) send: Option<Span>,
}

/// Removes every `#[hub_method(...)]` from `attrs` and parses them.
/// `allowed` is `["name"]` in a client trait, `["name", "skip"]` in a hub.
pub(crate) fn take_method_options(
    attrs: &mut Vec<Attribute>,
    allowed: &[&str],
    errors: &mut Errors,
) -> MethodOptions {
    let mut options = MethodOptions::default();
    let mut kept = Vec::with_capacity(attrs.len());
    for attr in attrs.drain(..) {
        if !attr.path().is_ident(METHOD_ATTR) {
            kept.push(attr);
            continue;
        }
        let result = attr.parse_nested_meta(|meta| {
            let key = meta
                .path
                .get_ident()
                .map(ToString::to_string)
                .unwrap_or_default();
            if !allowed.contains(&key.as_str()) {
                return Err(meta.error(format!(
                    "unknown option of `#[{METHOD_ATTR}]`; expected one of: {}",
                    one_of(allowed)
                )));
            }
            if key == "skip" || key == "stream" || key == "send" {
                let slot = match key.as_str() {
                    "skip" => &mut options.skip,
                    "stream" => &mut options.stream,
                    _ => &mut options.send,
                };
                if slot.is_some() {
                    return Err(meta.error(format!("`{key}` is given twice")));
                }
                *slot = Some(meta.path.span());
                return Ok(());
            }
            if options.name.is_some() {
                return Err(meta.error("`name` is given twice"));
            }
            let name: LitStr = meta.value()?.parse()?;
            if name.value().is_empty() {
                return Err(syn::Error::new(
                    name.span(),
                    "the wire name cannot be empty",
                ));
            }
            options.name = Some(name);
            Ok(())
        });
        if let Err(error) = result {
            errors.push(error);
        }
    }
    *attrs = kept;
    if let (Some(name), Some(_)) = (&options.name, options.skip) {
        errors.at(name.span(), "a skipped method has no wire name");
    }
    if let (Some(stream), Some(_)) = (options.stream, options.skip) {
        errors.at(
            stream,
            "a skipped method is not a hub method: it cannot stream",
        );
    }
    if let (Some(send), Some(_)) = (options.send, options.stream) {
        errors.at(
            send,
            "a streaming method answers with its items: it cannot be fire-and-forget",
        );
    }
    options
}

/// The text of the doc attributes of `attrs`, one line each.
pub(crate) fn doc_text(attrs: &[Attribute]) -> String {
    let mut lines = Vec::new();
    for attr in attrs {
        if !attr.path().is_ident("doc") {
            continue;
        }
        if let syn::Meta::NameValue(syn::MetaNameValue {
            value:
                syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(text),
                    ..
                }),
            ..
        }) = &attr.meta
        {
            lines.push(text.value());
        }
    }
    lines.join("\n")
}

/// The doc attributes of `attrs`, to copy onto generated items.
pub(crate) fn docs(attrs: &[Attribute]) -> Vec<Attribute> {
    attrs
        .iter()
        .filter(|attr| attr.path().is_ident("doc"))
        .cloned()
        .collect()
}

/// Reports wire names that collide (compared case-insensitively, as clients
/// and servers look them up).
pub(crate) fn check_duplicate_names<'a>(
    names: impl IntoIterator<Item = (&'a str, Span)>,
    errors: &mut Errors,
) {
    let mut seen: HashMap<String, &str> = HashMap::new();
    for (name, span) in names {
        match seen.get(&name.to_ascii_lowercase()) {
            Some(first) => errors.at(
                span,
                format!(
                    "duplicate wire name `{name}`: `{first}` is already taken (wire names are \
                     matched case-insensitively); rename one with `#[{METHOD_ATTR}(name = \"...\")]`"
                ),
            ),
            None => {
                seen.insert(name.to_ascii_lowercase(), name);
            }
        }
    }
}

pub(crate) fn check_not_generic(sig: &Signature, what: &str, errors: &mut Errors) {
    if !sig.generics.params.is_empty() {
        errors.at(
            sig.generics.span(),
            format!("{what} cannot be generic: the wire fixes every argument's type"),
        );
    } else if let Some(clause) = &sig.generics.where_clause {
        errors.at(
            clause.span(),
            format!("{what} cannot have a `where` clause"),
        );
    }
}

/// The name a parameter gets in generated code: its own when it is a plain
/// identifier, else `__arg{index}`.
pub(crate) fn param_ident(pat: &Pat, index: usize) -> Ident {
    match pat {
        Pat::Ident(pat) if pat.by_ref.is_none() && pat.subpat.is_none() => {
            let ident = &pat.ident;
            if ident.to_string().starts_with('_') {
                quote::format_ident!("__arg{index}")
            } else {
                Ident::new(&ident.to_string(), ident.span())
            }
        }
        _ => quote::format_ident!("__arg{index}"),
    }
}

// ---------------------------------------------------------------------------
// `#[hub_client]` traits

/// One argument of a client method.
pub(crate) struct Param {
    /// Its name in the proxies and handlers.
    pub(crate) ident: Ident,
    /// Its type, as written.
    pub(crate) ty: Type,
}

/// One method of a `#[hub_client]` trait.
pub(crate) struct ClientMethod {
    pub(crate) ident: Ident,
    pub(crate) wire_name: String,
    /// Where the wire name comes from: the `name = "..."` or the identifier.
    pub(crate) name_span: Span,
    pub(crate) params: Vec<Param>,
    /// `None` for a fire-and-forget method, `Some(T)` for a client result.
    pub(crate) output: Option<Type>,
    pub(crate) docs: Vec<Attribute>,
}

/// A `#[hub_client]` trait: the trait (helper attributes removed) and its
/// methods.
pub(crate) struct ClientTrait {
    pub(crate) item: ItemTrait,
    pub(crate) methods: Vec<ClientMethod>,
}

/// The name of the provided method that `#[hub_client]` adds.
pub(crate) const INTO_HANDLERS: &str = "into_handlers";

pub(crate) fn parse_client_trait(mut item: ItemTrait, errors: &mut Errors) -> ClientTrait {
    if !item.generics.params.is_empty() {
        errors.at(
            item.generics.span(),
            "a `#[hub_client]` trait cannot be generic: the wire fixes every argument's type",
        );
    }
    if let Some(unsafety) = &item.unsafety {
        errors.at(
            unsafety.span(),
            "a `#[hub_client]` trait cannot be `unsafe`",
        );
    }
    let mut methods = Vec::new();
    for trait_item in &mut item.items {
        match trait_item {
            TraitItem::Fn(method) => {
                let options = take_method_options(&mut method.attrs, &["name"], errors);
                if let Some(method) = parse_client_method(method, options, errors) {
                    methods.push(method);
                }
            }
            other => errors.at(
                other.span(),
                "a `#[hub_client]` trait holds only methods: \
                 `async fn name(&self, arg: Type)` or `async fn name(&self, arg: Type) -> Result`",
            ),
        }
    }
    check_duplicate_names(
        methods
            .iter()
            .map(|method| (method.wire_name.as_str(), method.name_span)),
        errors,
    );
    ClientTrait { item, methods }
}

fn parse_client_method(
    method: &TraitItemFn,
    options: MethodOptions,
    errors: &mut Errors,
) -> Option<ClientMethod> {
    let sig = &method.sig;
    let mut ok = true;
    if sig.ident == INTO_HANDLERS {
        errors.at(
            sig.ident.span(),
            format!("`{INTO_HANDLERS}` is the method `#[hub_client]` adds; rename this one"),
        );
        ok = false;
    }
    if sig.asyncness.is_none() {
        errors.at(
            sig.fn_token.span(),
            "client methods must be `async fn`: `async fn name(&self, arg: Type)`",
        );
        ok = false;
    }
    if let Some(body) = &method.default {
        errors.at(
            body.span(),
            "client methods cannot have a default body: the client implements them",
        );
        ok = false;
    }
    if let Some(unsafety) = &sig.unsafety {
        errors.at(unsafety.span(), "client methods cannot be `unsafe`");
        ok = false;
    }
    check_not_generic(sig, "a client method", errors);
    match sig.inputs.first() {
        Some(FnArg::Receiver(receiver))
            if receiver.reference.is_some()
                && receiver.mutability.is_none()
                && receiver.colon_token.is_none() => {}
        Some(FnArg::Receiver(receiver)) => {
            errors.at(
                receiver.self_token.span(),
                "client methods take `&self`: the handlers share one instance",
            );
            ok = false;
        }
        _ => {
            errors.at(
                sig.paren_token.span.join(),
                "client methods take `&self` first: `async fn name(&self, …)`",
            );
            ok = false;
        }
    }
    let mut params = Vec::new();
    for (index, input) in sig.inputs.iter().enumerate() {
        if let FnArg::Typed(arg) = input {
            params.push(Param {
                ident: param_ident(&arg.pat, index),
                ty: (*arg.ty).clone(),
            });
        }
    }
    let output = match &sig.output {
        ReturnType::Default => None,
        ReturnType::Type(_, ty) => match &**ty {
            Type::Tuple(tuple) if tuple.elems.is_empty() => None,
            ty => Some(ty.clone()),
        },
    };
    let name_span = options
        .name
        .as_ref()
        .map_or_else(|| sig.ident.span(), LitStr::span);
    let wire_name = options
        .name
        .map_or_else(|| pascal_case(&sig.ident.to_string()), |name| name.value());
    ok.then(|| ClientMethod {
        ident: sig.ident.clone(),
        wire_name,
        name_span,
        params,
        output,
        docs: docs(&method.attrs),
    })
}

// ---------------------------------------------------------------------------
// `#[hub]` impl blocks

/// How a hub method takes `self`.
#[derive(Clone, Copy)]
pub(crate) enum Receiver {
    /// `&self`
    Ref,
    /// `self: Arc<Self>`
    Arc,
}

/// One parameter of a hub method.
pub(crate) enum HubParam {
    /// A wire argument of this type (bound from `arguments[index]`).
    Wire(Box<Type>),
    /// The call's context, `CallContext<Self>` (`by_ref: false`) or
    /// `&CallContext<Self>`: not on the wire.
    Context { by_ref: bool },
    /// An upload stream, `UploadStream<T>` (its item type here): bound in
    /// order from the invocation's `streamIds`, not from `arguments`.
    Upload(Box<Type>),
}

/// How a hub method answers; mirrors `hub_runtime::hub::MethodKind`.
#[derive(Clone, Copy)]
pub(crate) enum MethodKind {
    /// One Completion.
    Unary,
    /// A stream of items, then a Completion. `fallible`: the method
    /// returns `Result<stream, HubError>`.
    Stream { fallible: bool },
}

/// One method clients can invoke.
pub(crate) struct HubMethod {
    pub(crate) ident: Ident,
    pub(crate) wire_name: String,
    pub(crate) receiver: Receiver,
    pub(crate) params: Vec<HubParam>,
    /// Where the return type is (or the signature, for `()`): errors about
    /// the result point there.
    pub(crate) output_span: Span,
    pub(crate) kind: MethodKind,
}

/// A lifecycle hook: `on_connected` or `on_disconnected`.
pub(crate) struct Hook {
    pub(crate) ident: Ident,
    pub(crate) receiver: Receiver,
    pub(crate) params: Vec<HubParam>,
}

/// A `#[hub]` impl block.
pub(crate) struct HubImpl {
    /// The block as written, helper attributes removed.
    pub(crate) item: ItemImpl,
    pub(crate) methods: Vec<HubMethod>,
    pub(crate) on_connected: Option<Hook>,
    pub(crate) on_disconnected: Option<Hook>,
    /// `#[authorize]` on the block: the whole hub.
    pub(crate) authorize: Option<AuthorizeSpec>,
    /// `#[authorize]` on methods, by index into `methods`.
    pub(crate) method_authorize: Vec<(usize, AuthorizeSpec)>,
}

pub(crate) const ON_CONNECTED: &str = "on_connected";
pub(crate) const ON_DISCONNECTED: &str = "on_disconnected";

pub(crate) fn parse_hub_impl(mut item: ItemImpl, errors: &mut Errors) -> HubImpl {
    if let Some((_, path, _)) = &item.trait_ {
        errors.at(
            path.span(),
            "`#[hub]` goes on an inherent impl block (`impl MyHub { … }`), not on a trait impl",
        );
    }
    let authorize = take_authorize(&mut item.attrs, errors);
    let mut method_authorize = Vec::new();
    let mut methods = Vec::new();
    let mut names = Vec::new();
    let mut on_connected = None;
    let mut on_disconnected = None;
    for impl_item in &mut item.items {
        let ImplItem::Fn(method) = impl_item else {
            continue;
        };
        let options = take_method_options(&mut method.attrs, &["name", "skip", "stream"], errors);
        let method_spec = take_authorize(&mut method.attrs, errors);
        if method_spec.is_some() && options.skip.is_some() {
            errors.at(
                method.sig.ident.span(),
                "`#[authorize]` on a skipped method: it is not a hub method, so no client can \
                 call it; remove `#[authorize]` or `#[hub_method(skip)]`",
            );
        }
        if options.skip.is_some() {
            continue;
        }
        if method.sig.asyncness.is_none() {
            errors.at(
                method.sig.fn_token.span(),
                format!(
                    "hub methods must be `async fn`; mark a helper that is not a hub method \
                     with `#[{METHOD_ATTR}(skip)]`"
                ),
            );
            continue;
        }
        let ident = method.sig.ident.to_string();
        if method_spec.is_some() && (ident == ON_CONNECTED || ident == ON_DISCONNECTED) {
            errors.at(
                method.sig.ident.span(),
                format!(
                    "`#[authorize]` on `{ident}`, a lifecycle hook: put it on the `#[hub]` \
                     block to authorize the whole hub"
                ),
            );
        }
        let ident = method.sig.ident.to_string();
        if ident == ON_CONNECTED || ident == ON_DISCONNECTED {
            if let Some(name) = &options.name {
                errors.at(
                    name.span(),
                    format!("`{ident}` is a lifecycle hook, not a hub method: it has no wire name"),
                );
            }
            let hook = parse_hook(method, ident == ON_DISCONNECTED, errors);
            if ident == ON_CONNECTED {
                on_connected = hook;
            } else {
                on_disconnected = hook;
            }
            continue;
        }
        let name_span = options
            .name
            .as_ref()
            .map_or_else(|| method.sig.ident.span(), LitStr::span);
        if let Some(send) = options.send {
            errors.at(
                send,
                "`send` belongs in a `#[hub_server]` trait, where it tells clients not to wait",
            );
        }
        if let Some(parsed) = parse_hub_method(&method.sig, options, errors) {
            names.push((parsed.wire_name.clone(), name_span));
            if let Some(spec) = method_spec {
                method_authorize.push((methods.len(), spec));
            }
            methods.push(parsed);
        }
    }
    check_duplicate_names(
        names.iter().map(|(name, span)| (name.as_str(), *span)),
        errors,
    );
    HubImpl {
        item,
        methods,
        on_connected,
        on_disconnected,
        authorize,
        method_authorize,
    }
}

pub(crate) fn hub_receiver(sig: &Signature, errors: &mut Errors) -> Option<Receiver> {
    match sig.inputs.first() {
        Some(FnArg::Receiver(receiver)) => {
            if receiver.colon_token.is_none()
                && receiver.reference.is_some()
                && receiver.mutability.is_none()
            {
                return Some(Receiver::Ref);
            }
            if receiver.colon_token.is_some()
                && receiver.reference.is_none()
                && last_segment_is(&receiver.ty, "Arc")
            {
                return Some(Receiver::Arc);
            }
            errors.at(
                receiver.self_token.span(),
                "hub methods take `&self` or `self: Arc<Self>`: one hub instance serves every call",
            );
            None
        }
        _ => {
            errors.at(
                sig.paren_token.span.join(),
                "hub methods take `&self` first: `async fn name(&self, …)`",
            );
            None
        }
    }
}

pub(crate) fn last_segment_is(ty: &Type, name: &str) -> bool {
    match ty {
        Type::Path(path) => path
            .path
            .segments
            .last()
            .is_some_and(|segment| segment.ident == name),
        Type::Group(group) => last_segment_is(&group.elem, name),
        Type::Paren(paren) => last_segment_is(&paren.elem, name),
        _ => false,
    }
}

pub(crate) fn hub_params(sig: &Signature, errors: &mut Errors) -> Vec<HubParam> {
    let mut params = Vec::new();
    let mut context_seen = false;
    for input in &sig.inputs {
        let FnArg::Typed(arg) = input else { continue };
        let param = match &*arg.ty {
            Type::Reference(reference) if last_segment_is(&reference.elem, "CallContext") => {
                if let Some(mutability) = &reference.mutability {
                    errors.at(
                        mutability.span(),
                        "take the context as `&CallContext<Self>` or `CallContext<Self>`",
                    );
                }
                HubParam::Context { by_ref: true }
            }
            ty if last_segment_is(ty, "CallContext") => HubParam::Context { by_ref: false },
            Type::Reference(reference) if last_segment_is(&reference.elem, "UploadStream") => {
                errors.at(
                    reference.and_token.span(),
                    "take an upload stream by value: `name: UploadStream<T>`",
                );
                continue;
            }
            ty if last_segment_is(ty, "UploadStream") => match single_generic_argument(ty) {
                Some(item) => HubParam::Upload(Box::new(item)),
                None => {
                    errors.at(
                        ty.span(),
                        "name the item type of the upload stream: `UploadStream<T>`",
                    );
                    continue;
                }
            },
            ty => HubParam::Wire(Box::new(ty.clone())),
        };
        if matches!(param, HubParam::Context { .. }) {
            if context_seen {
                errors.at(
                    arg.ty.span(),
                    "a hub method takes at most one `CallContext`",
                );
            }
            context_seen = true;
        }
        params.push(param);
    }
    params
}

/// The only type argument of the last segment of `ty` (`T` of `X<T>`).
pub(crate) fn single_generic_argument(ty: &Type) -> Option<Type> {
    let Type::Path(path) = ty else { return None };
    let segment = path.path.segments.last()?;
    let syn::PathArguments::AngleBracketed(arguments) = &segment.arguments else {
        return None;
    };
    let mut types = arguments.args.iter().filter_map(|argument| match argument {
        syn::GenericArgument::Type(ty) => Some(ty.clone()),
        _ => None,
    });
    let first = types.next()?;
    types.next().is_none().then_some(first)
}

/// Whether `bounds` name a `Stream` trait (`impl Stream<Item = T>`,
/// `dyn Stream<Item = T> + Send`).
fn bounds_name_stream<'a>(mut bounds: impl Iterator<Item = &'a syn::TypeParamBound>) -> bool {
    bounds.any(|bound| match bound {
        syn::TypeParamBound::Trait(bound) => bound
            .path
            .segments
            .last()
            .is_some_and(|segment| segment.ident == "Stream"),
        _ => false,
    })
}

/// Whether `ty` is written as a stream: `impl Stream<…>`, `dyn Stream<…>`
/// (also inside `Box<…>` and `Pin<Box<…>>`) or `BoxStream<…>`.
pub(crate) fn is_stream_type(ty: &Type) -> bool {
    match ty {
        Type::ImplTrait(ty) => bounds_name_stream(ty.bounds.iter()),
        Type::TraitObject(ty) => bounds_name_stream(ty.bounds.iter()),
        Type::Group(group) => is_stream_type(&group.elem),
        Type::Paren(paren) => is_stream_type(&paren.elem),
        Type::Path(_) if last_segment_is(ty, "BoxStream") => true,
        Type::Path(_) if last_segment_is(ty, "Pin") || last_segment_is(ty, "Box") => {
            single_generic_argument(ty).is_some_and(|inner| is_stream_type(&inner))
        }
        _ => false,
    }
}

/// How a method answers, from its return type and `#[hub_method(stream)]`:
/// a stream (`S` or `Result<S, HubError>`) or one value.
pub(crate) fn method_kind(
    sig: &Signature,
    stream_option: Option<Span>,
    errors: &mut Errors,
) -> MethodKind {
    let ReturnType::Type(_, ty) = &sig.output else {
        if let Some(span) = stream_option {
            errors.at(
                span,
                "a streaming method returns its stream: `-> impl Stream<Item = T>`",
            );
        }
        return MethodKind::Unary;
    };
    if is_stream_type(ty) {
        return MethodKind::Stream { fallible: false };
    }
    if last_segment_is(ty, "Result") {
        let ok = match &**ty {
            Type::Path(path) => {
                path.path
                    .segments
                    .last()
                    .and_then(|segment| match &segment.arguments {
                        syn::PathArguments::AngleBracketed(arguments) => {
                            arguments.args.iter().find_map(|argument| match argument {
                                syn::GenericArgument::Type(ty) => Some(ty.clone()),
                                _ => None,
                            })
                        }
                        _ => None,
                    })
            }
            _ => None,
        };
        if ok.as_ref().is_some_and(is_stream_type) || (stream_option.is_some() && ok.is_some()) {
            return MethodKind::Stream { fallible: true };
        }
    }
    if stream_option.is_some() {
        return MethodKind::Stream { fallible: false };
    }
    MethodKind::Unary
}

pub(crate) fn parse_hub_method(
    sig: &Signature,
    options: MethodOptions,
    errors: &mut Errors,
) -> Option<HubMethod> {
    check_not_generic(sig, "a hub method", errors);
    let receiver = hub_receiver(sig, errors)?;
    let params = hub_params(sig, errors);
    let kind = method_kind(sig, options.stream, errors);
    let wire_name = options
        .name
        .map_or_else(|| pascal_case(&sig.ident.to_string()), |name| name.value());
    Some(HubMethod {
        ident: sig.ident.clone(),
        wire_name,
        receiver,
        params,
        output_span: match &sig.output {
            ReturnType::Default => sig.ident.span(),
            ReturnType::Type(_, ty) => ty.span(),
        },
        kind,
    })
}

fn parse_hook(method: &ImplItemFn, disconnected: bool, errors: &mut Errors) -> Option<Hook> {
    let sig = &method.sig;
    check_not_generic(sig, "a lifecycle hook", errors);
    let receiver = hub_receiver(sig, errors)?;
    let params = hub_params(sig, errors);
    if params
        .iter()
        .any(|param| matches!(param, HubParam::Upload(_)))
    {
        errors.at(
            sig.inputs.span(),
            "a lifecycle hook takes no upload stream: only hub methods are invoked with streams",
        );
        return None;
    }
    let wire = params
        .iter()
        .filter(|param| matches!(param, HubParam::Wire(_)))
        .count();
    let allowed = usize::from(disconnected);
    if wire != allowed {
        let expected = if disconnected {
            "`async fn on_disconnected(&self, ctx: CallContext<Self>, error: Option<HubError>)`"
        } else {
            "`async fn on_connected(&self, ctx: CallContext<Self>) -> Result<(), HubError>`"
        };
        errors.at(
            sig.inputs.span(),
            format!("a lifecycle hook has this signature: {expected} (the context is optional)"),
        );
        return None;
    }
    Some(Hook {
        ident: sig.ident.clone(),
        receiver,
        params,
    })
}
