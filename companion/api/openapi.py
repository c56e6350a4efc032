"""The OpenAPI 3.1 document, served at GET /api/openapi.json: generated from the app's URL map
(paths, methods, path parameters), the body models of companion/api/schemas.py (request and
response schemas, with the bounds config.py declares) and ROUTES, the one table of what each
route does (summary, body model, responses, query parameters). A test checks that ROUTES and
the URL map name the same routes."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from werkzeug.routing import Map

from companion import __version__
from companion.api import schemas as s
from companion.api.schemas import clean_schema
from companion.config import COMPANION_SORTS, MAX_FILTER_TAGS, MAX_SEARCH_LENGTH, MAX_TAG_LENGTH
from companion.voice.audio import MEDIA_TYPES

JSON = "application/json"
TEXT = {"type": "string"}
INT = {"type": "integer"}
BOOL = {"type": "boolean"}
NUM = {"type": "number"}
BINARY = {"type": "string", "format": "binary"}
Schema = dict | type[BaseModel] | None


def obj(required: list[str] | None = None, **properties: Any) -> dict:
    """A small JSON object schema (for responses no model describes)."""
    schema: dict = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return schema


def page_of(item: Schema) -> dict:
    return obj(["items", "total"], items={"type": "array", "items": item}, total=INT)


def ok(schema: Schema = None, status: str = "200", description: str = "ok") -> dict:
    """A JSON response (no body with schema None)."""
    if schema is None:
        return {status: {"description": description}}
    return {status: {"description": description, "content": {JSON: {"schema": schema}}}}


def sentence(description: str) -> dict:
    """The AI Companion API's plain-text success sentence."""
    return {"200": {"description": description, "content": {"text/plain": {"schema": TEXT}}}}


def media(*types: str, description: str = "ok") -> dict:
    return {"200": {"description": description, "content": {t: {"schema": BINARY} for t in dict.fromkeys(types)}}}


def query(name: str, schema: dict, required: bool = False, **more: Any) -> dict:
    return {"name": name, "in": "query", "required": required, "schema": schema, **more}


def query_of(model: type[BaseModel]) -> tuple[dict, ...]:
    """A model's fields as query parameters."""
    schema = clean_schema(model.model_json_schema())
    return tuple(query(key, prop, key in schema.get("required", ())) for key, prop in schema["properties"].items())


ERRORS = {
    "400": {"description": "bad input: nothing changed", "content": {JSON: {"schema": s.Error},
                                                                     "text/plain": {"schema": TEXT}}},
    "4XX": {"description": "refused (401, 403, 404, 409, 413, 421, 429)",
            "content": {JSON: {"schema": s.Error}, "text/plain": {"schema": TEXT}}},
    "503": {"description": "the model is loading or failed to load",
            "content": {JSON: {"schema": s.Error}, "text/plain": {"schema": TEXT}}},
}
# each Server-Sent Event: token pieces, with "speak": true each sentence's audio ({index, text, format,
# seconds, audio: base64}) in order, then done (or error); data is JSON text
TURN_EVENTS = obj(["event", "data"], event={"type": "string", "enum": ["token", "audio", "done", "error"]}, data=TEXT)
GROUP_EVENTS = obj(["event", "data"], event={"type": "string", "enum": ["message", "speaker", "token", "audio",
                                                                        "reply", "done", "error"]}, data=TEXT)
DATA_LINES = obj(["data"], data=TEXT)      # `data: {chunk}` lines, then `data: [DONE]`
NDJSON = {"200": {"description": "the reply, or newline-delimited JSON objects ending with done: true",
                  "content": {JSON: {"schema": {"type": "object"}}, "application/x-ndjson": {"schema": TEXT}}}}
MEMORY_PARAM = {"name": "X-Companion-Memory", "in": "header", "required": False,
                "schema": {"type": "integer", "minimum": 1},
                "description": "Opt in to a companion's long-term memory with any model name (as model memory/<id>): "
                               "its memories for the newest user message go into a system message just before it "
                               "(the prefix a frontend resends stays cached), leaving out those whose text the "
                               "messages already hold; the exchange (that message and the reply) is remembered "
                               "as one memory of the companion when the reply ends (a partial reply when the "
                               "client goes away). 404 for an unknown companion; 400 with a companion/<id> model."}
RECALLED_HEADERS = {"X-Companion-Memories": {
    "description": "with memory: the ids of the memories put into the prompt, best first, comma-separated "
                   "(empty: none); streamed replies too", "schema": TEXT}}


@dataclass(frozen=True)
class Route:
    """What one route does, for the document: its summary, request body, responses and query."""
    summary: str
    responses: dict
    body: type[BaseModel] | None = None      # a JSON body model
    optional_body: bool = False
    raw: str | None = None                   # a raw body of this media type (or multipart field 'file')
    form: type[BaseModel] | None = None      # a multipart form only
    params: tuple[dict, ...] = ()            # query (and header) parameters
    stream: dict | None = None               # the Server-Sent Events it streams when asked
    memory: bool = False                     # takes the memory opt-in header


PAGE = query_of(s.PageQuery)
ID_QUERY = {"type": "integer", "minimum": 1}
SIZE = query("size", {"type": "string", "enum": ["full", "thumb"]})
COMPANION_FILTERS = (
    query("q", {"type": "string", "maxLength": MAX_SEARCH_LENGTH,
                "description": "found (any case) in the name, nickname, description or creator notes"}),
    query("tags", {"type": "array", "maxItems": MAX_FILTER_TAGS,
                   "items": {"type": "string", "minLength": 1, "maxLength": MAX_TAG_LENGTH, "pattern": "^[^,]*$"}},
          style="form", explode=False, description="comma-separated: companions that have all of them (any case)"),
    query("sort", {"type": "string", "enum": list(COMPANION_SORTS)}),
    query("order", {"type": "string", "enum": ["asc", "desc"]}))
AUDIO = media(*MEDIA_TYPES.values(), description="audio")
REPLY = ok(s.ReplyMessage)
COMPLETION = ok(obj(["id", "object", "choices"], id=TEXT, object=TEXT, created=INT, model=TEXT,
                    choices={"type": "array"}, usage={"type": "object"}))
KOBOLD_RESULT = ok(obj(["result"], result=TEXT))
PULL = {"200": {"description": "{status: success}, or newline-delimited progress objects ending with "
                               "{status: success} (or {error})",
                "content": {JSON: {"schema": obj(["status"], status=TEXT)}, "application/x-ndjson": {"schema": TEXT}}}}
CHANGES = {"firstMessage": "Changed first message", "companionName": "Changed companion name",
           "companionPersona": "Changed companion persona",
           "companionExampleDialogue": "Changed companion example dialogue",
           "longTermMemory": "Changed long term memory limit for ai",
           "shortTermMemory": "Changed short term memory limit for ai", "roleplay": "Enabled roleplay / Disabled roleplay",
           "dialogue_tuning": "Enabled dialogue tuning / Disabled dialogue tuning",
           "userName": "Changed user name", "userPersona": "Changed user persona"}


def change(key: str) -> Route:
    model = s.CHANGES[key]
    return Route(f"Change {next(iter(model.model_fields))} (AI Companion API)", sentence(CHANGES[key]), model)


# "METHOD path": what the route does. The URL map says which routes there are and their path parameters.
ROUTES: dict[str, Route] = {
    "GET /": Route("The web page", {"200": {"description": "HTML", "content": {"text/html": {"schema": TEXT}}}}),
    "GET /assets/avatar.png": Route("The active companion's avatar", media("image/png")),
    # the AI Companion API
    "POST /api/prompt": Route("Send a message; the reply (JSON, or SSE when asked)", REPLY, s.PromptBody,
                              stream=TURN_EVENTS),
    **{f"{method} /api/regenerate_message": Route("Generate the last reply again", REPLY, s.RegenerateBody,
                                                  optional_body=True, stream=TURN_EVENTS) for method in ("GET", "POST")},
    "GET /api/messages": Route("The active chat's messages, oldest first",
                               ok({"type": "array", "items": s.CompatMessage})),
    "POST /api/editMessage": Route("Edit a message", sentence("Removed message"), s.EditMessageBody),
    "POST /api/removeMessage": Route("Remove a message", sentence("Removed message"), s.RemoveMessageBody),
    "GET /api/clearMessages": Route("Clear the chat log", sentence("Chat log cleared")),
    "GET /api/companionData": Route("The active companion", ok(s.CompanionData)),
    "GET /api/userData": Route("The active user persona", ok(s.UserData)),
    **{f"POST /api/change/{key}": change(key) for key in CHANGES},
    "POST /api/change/companionData": Route("Change the active companion",
                                            sentence("Data of your AI companion has been changed"), s.CompanionDataBody),
    "POST /api/change/userData": Route("Change the active user persona", sentence("Data of user has been changed"),
                                       s.UserDataBody),
    "POST /api/change/companionAvatar": Route("Change the avatar (raw image body)",
                                              sentence("Changed avatar of your ai companion"), raw="image/png"),
    "POST /api/addData": Route("Add to long-term memory", sentence("Added custom data to AI long term memory"),
                               s.TextBody),
    "GET /api/erase/longTermMemory": Route("Erase long-term memory", sentence("Erased AI's long term memory")),
    "POST /api/import/characterJson": Route("Replace the active companion from character JSON",
                                            sentence("Data of your ai companion has been changed"), s.CharacterJsonBody),
    "POST /api/import/characterCard": Route("Replace the active companion from a card (raw PNG)",
                                            sentence("Data of your ai companion has been changed"), raw="image/png"),
    "POST /api/import/messagesJson": Route("Import messages into short- and long-term memory",
                                           sentence("Imported messages to your ai companion memory"), s.MessagesJsonBody),
    "GET /api/messagesJson": Route("Export the active chat", ok(s.MessagesJson)),
    "GET /api/characterJson": Route("The active companion as character JSON", ok(s.CharacterJson)),
    "POST /api/saveTunedDialogue": Route("Save the last exchange as a tuning example",
                                         sentence("Saved messages as tuned dialogue")),
    "GET /api/clearTuningMessages": Route("Erase tuning examples", sentence("Tuning dialogue messages erased")),
    # status, generation, models
    "GET /api/status": Route("Version, model and embedder state, counts", ok(s.Status)),
    "GET /api/openapi.json": Route("This document", ok({"type": "object"})),
    "POST /api/abort": Route("Stop the running generation", ok(obj(["aborted"], aborted=BOOL))),
    "GET /api/models": Route("GGUF models the daemon can use", ok(page_of({"type": "object"}))),
    "GET /api/config": Route("Model and generation settings", ok(s.Config)),
    "PUT /api/config": Route("Change model and generation settings",
                             {**ok(s.Config), **ok(s.Config, "202", "a new model is loading")}, s.ConfigBody),
    "GET /api/events": Route(
        "Live events (Server-Sent Events): messages, chats, companions, memories, generations, model state; "
        "Last-Event-ID replays what was missed, or one 'resync'",
        {"200": {"description": "hello, then id/event/data blocks; comment lines as heartbeats",
                 "content": {"text/event-stream": {"schema": obj(["event", "data"], event=TEXT, data=TEXT, id=TEXT)}}},
         "503": {"description": "every event stream slot is taken ([server] max_event_streams)"}},
        params=(query("last_event_id", INT),)),
    # companions, personas, chats
    "GET /api/companions": Route("Companions matching q and all tags, sorted", ok(page_of(s.Companion)),
                                 params=PAGE + COMPANION_FILTERS),
    "POST /api/companions": Route("Create a companion", ok(s.Companion, "201"), s.CompanionNew),
    "POST /api/companions/import": Route("A new companion from a card file", ok(s.Companion, "201"),
                                         raw="application/octet-stream"),
    "GET /api/companions/{companion_id}": Route("A companion", ok(s.Companion)),
    "PATCH /api/companions/{companion_id}": Route("Change a companion", ok(s.Companion), s.CompanionChange),
    "DELETE /api/companions/{companion_id}": Route("Delete a companion with its chats and memories", ok(None, "204")),
    "POST /api/companions/{companion_id}/activate": Route("Make a companion the active one", ok(s.Companion)),
    "GET /api/companions/{companion_id}/avatar": Route("A companion's avatar", media("image/png"), params=(SIZE,)),
    "PUT /api/companions/{companion_id}/avatar": Route("Change a companion's avatar", ok(s.Companion), raw="image/png"),
    "GET /api/companions/{companion_id}/card.json": Route("The companion as a V3 card", ok({"type": "object"})),
    "GET /api/companions/{companion_id}/card.png": Route("The avatar with the card in ccv3 and chara",
                                                         media("image/png")),
    "GET /api/companions/{companion_id}/generation": Route("A companion's generation settings",
                                                           ok(s.CompanionGeneration)),
    "PATCH /api/companions/{companion_id}/generation": Route(
        "Change a companion's generation settings (null removes one)", ok(s.CompanionGeneration), s.Generation),
    "POST /api/companions/{companion_id}/lorebooks": Route("Attach a lorebook", ok(s.Lorebook), s.LorebookRef),
    "DELETE /api/companions/{companion_id}/lorebooks/{lorebook_id}": Route("Detach a lorebook", ok(None, "204")),
    "GET /api/personas": Route("List personas", ok(page_of(s.Persona)), params=PAGE),
    "POST /api/personas": Route("Create a persona", ok(s.Persona, "201"), s.PersonaNew),
    "GET /api/personas/{user_id}": Route("A persona", ok(s.Persona)),
    "PATCH /api/personas/{user_id}": Route("Change a persona", ok(s.Persona), s.PersonaBody),
    "DELETE /api/personas/{user_id}": Route("Delete a persona", ok(None, "204")),
    "POST /api/personas/{user_id}/activate": Route("Make a persona the active one", ok(s.Persona)),
    "GET /api/personas/{user_id}/avatar": Route("A persona's avatar (the default picture without one)",
                                                media("image/png"), params=(SIZE,)),
    "PUT /api/personas/{user_id}/avatar": Route("Change a persona's avatar", ok(s.Persona), raw="image/png"),
    "DELETE /api/personas/{user_id}/avatar": Route("Remove a persona's avatar", ok(s.Persona)),
    # generation presets
    "GET /api/presets": Route("Generation presets, the built-in ones first", ok(page_of(s.Preset)), params=PAGE),
    "POST /api/presets": Route("Create a preset (copy_of: start from another preset's settings)",
                               ok(s.Preset, "201"), s.PresetNew),
    "POST /api/presets/import": Route(
        "A SillyTavern text-generation preset (JSON) as a new preset; keys not used are kept for export and "
        "listed in ignored", ok(s.ImportedPreset, "201"), raw=JSON, params=(query("name", TEXT),)),
    "GET /api/presets/{preset_id}": Route("A preset", ok(s.Preset)),
    "PATCH /api/presets/{preset_id}": Route(
        "Rename a preset or change its settings (null removes one); 409 for a built-in one", ok(s.Preset),
        s.PresetChange),
    "DELETE /api/presets/{preset_id}": Route("Delete a preset (its companions then use none); 409 for a built-in one",
                                             ok(None, "204")),
    "GET /api/presets/{preset_id}/export": Route("A preset as SillyTavern text-generation preset JSON",
                                                 ok({"type": "object"})),
    "GET /api/chats": Route("Chats, newest first", ok(page_of(s.Chat)), params=PAGE + (query("companion_id", ID_QUERY),)),
    "POST /api/chats": Route("A new chat opening with a chosen greeting", ok(s.Chat, "201"), s.ChatNew),
    "POST /api/chats/import": Route("A SillyTavern .jsonl chat (or our JSON) into a new chat", ok(s.Chat, "201"),
                                    raw="application/jsonl"),
    "GET /api/chats/{chat_id}": Route("A chat", ok(s.Chat)),
    "PATCH /api/chats/{chat_id}": Route("Rename a chat and/or turn its story so far on or off", ok(s.Chat),
                                        s.ChatChange),
    "DELETE /api/chats/{chat_id}": Route("Delete a chat with its messages and their memories", ok(None, "204")),
    "POST /api/chats/{chat_id}/activate": Route("Make a chat (and its companion) the active one", ok(s.Chat)),
    "GET /api/chats/{chat_id}/messages": Route("A chat's messages, oldest first", ok(page_of(s.ChatMessage)),
                                               params=PAGE),
    "GET /api/chats/{chat_id}/export": Route(
        "A chat as json, SillyTavern jsonl, txt or csv",
        {"200": {"description": "the file", "content": {
            JSON: {"schema": {"type": "object"}},
            **{t: {"schema": TEXT} for t in ("application/jsonl", "text/plain", "text/csv")}}}},
        params=(query("format", {"type": "string", "enum": ["json", "jsonl", "txt", "csv"]}),)),
    # groups
    "GET /api/groups": Route("List groups", ok(page_of(s.Group)), params=PAGE),
    "POST /api/groups": Route("Create a group of two or more companions, with its first chat", ok(s.Group, "201"),
                              s.GroupNew),
    "GET /api/groups/{group_id}": Route("A group", ok(s.Group)),
    "PATCH /api/groups/{group_id}": Route("Change a group's name, strategy or members", ok(s.Group), s.GroupChange),
    "DELETE /api/groups/{group_id}": Route("Delete a group with its chats and what its members remember of them",
                                           ok(None, "204")),
    "POST /api/groups/{group_id}/activate": Route("Make a group the one the page talks to", ok(s.Group)),
    "GET /api/groups/{group_id}/avatar": Route("A collage of the members' avatars", media("image/png")),
    "GET /api/groups/{group_id}/chats": Route("A group's chats, newest first", ok(page_of(s.Chat)), params=PAGE),
    "POST /api/groups/{group_id}/chats": Route("A new chat of a group (made its active chat)", ok(s.Chat, "201"),
                                               s.TitleBody, optional_body=True),
    "POST /api/groups/{group_id}/chats/import": Route(
        "A SillyTavern group chat (.jsonl, each message named) into a new chat of the group", ok(s.Chat, "201"),
        raw="application/jsonl"),
    "POST /api/groups/{group_id}/turn": Route(
        "The user writes (or not), then members reply one after another by the group's strategy "
        "(SSE when asked: message, speaker, token, reply..., done)", ok(s.GroupTurn), s.GroupTurnBody,
        stream=GROUP_EVENTS),
    "POST /api/groups/{group_id}/reply": Route("One member speaks now (\"let X speak\")", ok(s.GroupTurn),
                                               s.GroupReplyBody, stream=GROUP_EVENTS),
    "PATCH /api/messages/{message_id}": Route("Edit a message (its chosen swipe)", ok(s.ChatMessage), s.TextBody),
    "DELETE /api/messages/{message_id}": Route("Delete a message and its memory", ok(None, "204")),
    "POST /api/messages/{message_id}/swipes": Route("Generate another alternative of a chat's last reply",
                                                    ok(s.ChatMessage, "201"), s.RegenerateBody, optional_body=True,
                                                    stream=TURN_EVENTS),
    "GET /api/messages/{message_id}/speech": Route(
        "A stored message spoken in its companion's voice (cached on disk; 501 without the speak extra)", AUDIO,
        params=(query("format", {"type": "string", "enum": list(MEDIA_TYPES)}),)),
    "GET /api/voice": Route("Which voice parts are installed (speak, listen), the voices and the limits",
                            ok(obj(["speak", "listen", "limits"], speak={"type": "object"}, listen={"type": "object"},
                                   limits={"type": "object"}))),
    "POST /v1/audio/speech": Route("OpenAI: text spoken (Piper; 501 without the speak extra)", AUDIO, s.SpeechBody),
    "POST /v1/audio/transcriptions": Route(
        "OpenAI: what is said in a recording (faster-whisper; 501 without the listen extra; 400 for audio that "
        "cannot be read, is silent or too long)", ok(obj(["text"], text=TEXT, language=TEXT, duration=NUM)),
        form=s.TranscriptionForm),
    "PUT /api/messages/{message_id}/swipe": Route("Choose one of a reply's swipes", ok(s.ChatMessage), s.SwipeChoice),
    "GET /api/search": Route("Full-text search over all messages", ok(page_of({"type": "object"})),
                             params=PAGE + (query("q", TEXT, required=True), query("companion_id", ID_QUERY),
                                            query("chat_id", ID_QUERY))),
    # long-term memory
    "GET /api/memories": Route("Memories, newest first, or ranked by q (with the time window q names)",
                               ok(obj(["items", "total"], items={"type": "array", "items": s.Memory}, total=INT,
                                      window={"oneOf": [{"type": "null"}, s.TimeWindow]})),
                               params=PAGE + (query("companion_id", ID_QUERY), query("q", TEXT))),
    "POST /api/memories": Route("Add a memory (made now, or at created_at)", ok(s.Memory, "201"), s.MemoryNew),
    "DELETE /api/memories": Route("Forget all of a companion's memories", ok(obj(["deleted"], deleted=INT)),
                                  params=(query("companion_id", ID_QUERY),)),
    "PATCH /api/memories/{memory_id}": Route("Change a memory's text (embedded again)", ok(s.Memory), s.TextBody),
    "DELETE /api/memories/{memory_id}": Route("Delete a memory", ok(None, "204")),
    "GET /api/memories/documents": Route("Documents in memory", ok(page_of(s.Document)),
                                         params=PAGE + (query("companion_id", ID_QUERY),)),
    "POST /api/memories/documents": Route("A document into memory, in overlapping chunks", ok(s.Document, "201"),
                                          raw="text/plain"),
    "DELETE /api/memories/documents/{document_id}": Route("Forget a document and all its chunks", ok(None, "204")),
    "GET /api/messages/{message_id}/context": Route("The memories and lore a reply used", ok({"type": "object"})),
    # OpenAI-compatible
    "GET /v1/models": Route("Models: the serving one, the other model files (named in a request, one loads and "
                            "serves), 'companion' and 'companion:<id>'",
                            ok(obj(["object", "data"], object=TEXT, data={"type": "array"}))),
    "POST /v1/chat/completions": Route(
        "Chat completion: the plain model (omitted, the serving model's name, or another model file of /v1/models, "
        "which loads first), or the companion (model 'companion' / 'companion:<id>'); any other model is a 404 "
        "with code model_not_found. Model 'memory/<id>' or 'memory/<id>/<model>' (or the X-Companion-Memory "
        "header): the client's own messages to the plain model, with companion <id>'s long-term memory put in "
        "and the exchange remembered", COMPLETION, s.ChatCompletionBody, stream=DATA_LINES, memory=True),
    "POST /v1/completions": Route(
        "Text completion of a prompt by the plain model (model names as for chat completions; a 404 for an "
        "unknown one)", COMPLETION, s.CompletionBody, stream=DATA_LINES),
    "POST /v1/embeddings": Route("Embeddings by the daemon's embedder",
                                 ok(obj(["object", "data"], object=TEXT, model=TEXT, data={"type": "array"},
                                        usage={"type": "object"})), s.EmbeddingsBody),
    # llama.cpp server
    "GET /health": Route("llama.cpp: 200 once the model is ready (503 while it loads)", ok(obj(["status"], status=TEXT))),
    "GET /props": Route("llama.cpp: the model, its context size and the default generation settings",
                        ok(obj(["default_generation_settings"], default_generation_settings={"type": "object"},
                               total_slots=INT, model_path=TEXT, chat_template=TEXT, build_info=TEXT))),
    "POST /completion": Route("llama.cpp: completion of a prompt by the plain model (nothing stored)",
                              ok(obj(["content", "stop"], content=TEXT, stop=BOOL, model=TEXT, tokens_predicted=INT,
                                     tokens_evaluated=INT, stop_type=TEXT, timings={"type": "object"})),
                              s.LlamaCompletionBody, stream=DATA_LINES),
    "POST /tokenize": Route("llama.cpp: the model's tokens of a text", ok(obj(["tokens"], tokens={"type": "array"})),
                            s.TokenizeBody),
    "POST /detokenize": Route("llama.cpp: the text of token ids", ok(obj(["content"], content=TEXT)), s.DetokenizeBody),
    # Ollama
    "GET /api/version": Route("Ollama: the API version these routes follow", ok(obj(["version"], version=TEXT))),
    "GET /api/tags": Route("Ollama: the serving model, the other model files (<file stem>:latest; named in a "
                           "request, one loads and serves) and one companion/<id> per companion",
                           ok(obj(["models"], models={"type": "array"}))),
    "POST /api/show": Route("Ollama: a model's template, parameters and header facts (a model file named is "
                            "described, not loaded; 404 for an unknown name)",
                            ok(obj(["template"], modelfile=TEXT, parameters=TEXT, template=TEXT,
                                   details={"type": "object"}, model_info={"type": "object"})), s.OllamaShowBody),
    "GET /api/ps": Route("Ollama: the model in memory", ok(obj(["models"], models={"type": "array"}))),
    "POST /api/generate": Route(
        "Ollama: completion of a prompt (NDJSON stream unless stream is false; nothing stored). The model: "
        "omitted or the serving one, another model file of /api/tags (loaded first; with an empty prompt, only "
        "loaded); an unknown name is a 404, {error: \"model 'NAME' not found\"}", NDJSON, s.OllamaGenerateBody),
    "POST /api/chat": Route(
        "Ollama: chat with the model (named as for /api/generate: another model file loads first, an unknown "
        "name is a 404), or with a companion (model companion/<id>: its memory and chat). Model memory/<id> or "
        "memory/<id>/<model> (or the X-Companion-Memory header): the client's own messages to the model, with "
        "companion <id>'s long-term memory put in and the exchange remembered", NDJSON, s.OllamaChatBody,
        memory=True),
    "POST /api/embed": Route("Ollama: embeddings by the daemon's embedder (model: omitted, the embedder's name, "
                             "all-minilm for the bundled one, or the serving model's; 400 for another model file, "
                             "404 for an unknown name)",
                             ok(obj(["embeddings"], model=TEXT, embeddings={"type": "array"}, total_duration=INT,
                                    load_duration=INT, prompt_eval_count=INT)), s.EmbeddingsBody),
    "POST /api/embeddings": Route("Ollama (older): one embedding (model names as for /api/embed)",
                                  ok(obj(["embedding"], embedding={"type": "array"})), s.OllamaEmbeddingsBody),
    "POST /api/pull": Route(
        "Ollama: download a GGUF into the data dir's models/ (hf.co/OWNER/REPO[:QUANT], OWNER/REPO/FILE.gguf or an "
        "https:// URL); NDJSON progress unless stream is false; 403 when [model] allow_pull is false", PULL,
        s.OllamaPullBody),
    "DELETE /api/delete": Route(
        "Ollama: delete a model file from the data dir's models/ (not the bundled one, not the one serving)", ok(),
        s.OllamaShowBody),
    # KoboldCpp-compatible
    "GET /api/v1/model": Route("KoboldCpp: the model", KOBOLD_RESULT),
    "GET /api/v1/info/version": Route("KoboldCpp: API version", KOBOLD_RESULT),
    "GET /api/extra/version": Route("KoboldCpp: server version", ok(obj(["result", "version"], result=TEXT,
                                                                         version=TEXT))),
    "POST /api/v1/generate": Route("KoboldCpp: generate", ok(obj(["results"], results={"type": "array"})),
                                   s.KoboldBody),
    "POST /api/extra/generate/stream": Route("KoboldCpp: generate, streamed (event: message, {token})",
                                             {"200": {"description": "SSE", "content": {
                                                 "text/event-stream": {"schema": DATA_LINES}}}}, s.KoboldBody),
    "POST /api/extra/abort": Route("KoboldCpp: stop the running generation", ok(obj(["success"], success=TEXT))),
    # lorebooks
    "GET /api/lorebooks": Route("List lorebooks", ok(page_of(s.Lorebook)), params=PAGE),
    "POST /api/lorebooks": Route("Create a lorebook", ok(s.Lorebook, "201"), s.LorebookNew),
    "POST /api/lorebooks/import": Route("Import a lorebook file", ok(s.Lorebook, "201"), raw=JSON),
    "GET /api/lorebooks/{lorebook_id}": Route("A lorebook with its entries", ok(s.Lorebook)),
    "PATCH /api/lorebooks/{lorebook_id}": Route("Change a lorebook", ok(s.Lorebook), s.LorebookChange),
    "DELETE /api/lorebooks/{lorebook_id}": Route("Delete a lorebook", ok(None, "204")),
    "GET /api/lorebooks/{lorebook_id}/export": Route(
        "Export a lorebook", ok({"type": "object"}),
        params=(query("format", {"type": "string", "enum": ["character_book", "sillytavern", "lorebook_v3"]}),)),
    "POST /api/lorebooks/{lorebook_id}/entries": Route("Add an entry", ok(s.LoreEntry, "201"), s.LoreEntryBody),
    "PATCH /api/lorebooks/{lorebook_id}/entries/{index}": Route("Change an entry", ok(s.LoreEntry), s.LoreEntryBody),
    "DELETE /api/lorebooks/{lorebook_id}/entries/{index}": Route("Delete an entry", ok(None, "204")),
}
# models only other schemas refer to (by $ref in a loose field)
REFERRED = (s.Generation, s.Initiative, s.CompanionInitiative, s.CompanionVoice, s.LoreEntryBody)


def served(url_map: Map) -> list[tuple[str, str, dict[str, str]]]:
    """(path, METHOD, {parameter: converter}) of every route the URL map serves, paths as OpenAPI writes them."""
    routes = []
    for rule in url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        converters = {name: type(converter).__name__ for name, converter in rule._converters.items()}
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            routes.append((path, method, converters))
    return routes


def path_parameter(name: str, converter: str) -> dict:
    schema = {"type": "integer", "minimum": 0} if "Integer" in converter or "RowId" in converter else TEXT
    return {"name": name, "in": "path", "required": True, "schema": schema}


def referred(schema: Any, models: dict[str, type[BaseModel]]) -> Any:
    """schema with each model in it replaced by its $ref (the model noted in models)."""
    if isinstance(schema, type) and issubclass(schema, BaseModel):
        models[schema.__name__] = schema
        return {"$ref": f"#/components/schemas/{schema.__name__}"}
    if isinstance(schema, dict):
        return {k: referred(v, models) for k, v in schema.items()}
    if isinstance(schema, (list, tuple)):
        return [referred(v, models) for v in schema]
    return schema


def operation(route: Route, parameters: list[dict], models: dict[str, type[BaseModel]]) -> dict:
    """One operation of the document (models it names are noted in models)."""
    doc: dict = {"summary": route.summary, "responses": {**route.responses, **ERRORS}}
    if route.body is not None:
        doc["requestBody"] = {"required": not route.optional_body, "content": {JSON: {"schema": route.body}}}
    if route.raw is not None:
        doc["requestBody"] = {"required": True, "content": {
            route.raw: {"schema": BINARY},
            "multipart/form-data": {"schema": obj(["file"], file=BINARY)}}}
    if route.form is not None:
        doc["requestBody"] = {"required": True, "content": {"multipart/form-data": {"schema": route.form}}}
    parameters = parameters + list(route.params) + ([MEMORY_PARAM] if route.memory else [])
    if parameters:
        doc["parameters"] = parameters
    if route.stream:
        streamed = doc["responses"].setdefault("200", {"description": "streamed when asked", "content": {}})
        streamed = doc["responses"]["200"] = {**streamed, "content": {**streamed.get("content", {}),
                                                                       "text/event-stream": {"schema": route.stream}}}
    if route.memory:
        doc["responses"]["200"] = {**doc["responses"]["200"], "headers": RECALLED_HEADERS}
    return referred(doc, models)


def table_routes() -> list[tuple[str, str, dict[str, str]]]:
    """The routes of ROUTES as served() gives them (every path parameter an integer): for a document without an app."""
    routes = []
    for key in ROUTES:
        method, path = key.split(" ", 1)
        routes.append((path, method, {name: "RowIdConverter" for name in re.findall(r"{(\w+)}", path)}))
    return routes


def openapi_document(url_map: Map | None = None) -> dict:
    """The whole OpenAPI 3.1 document of the routes the URL map serves (ROUTES' without one)."""
    models: dict[str, type[BaseModel]] = {m.__name__: m for m in REFERRED}
    paths: dict[str, dict] = {}
    for path, method, converters in (served(url_map) if url_map is not None else table_routes()):
        route = ROUTES.get(f"{method} {path}") or Route("(not described in companion/api/openapi.py's ROUTES)", ok())
        parameters = [path_parameter(name, converter) for name, converter in converters.items()]
        paths.setdefault(path, {})[method.lower()] = operation(route, parameters, models)
    _, top = models_json_schema([(m, "validation") for m in models.values()],
                                ref_template="#/components/schemas/{model}")
    return {
        "openapi": "3.1.0",
        "info": {"title": "companion", "version": __version__,
                 "description": "A local AI companion daemon: the AI Companion API and a modern REST API."},
        "components": {"schemas": clean_schema(top.get("$defs", {})), "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer"},
            "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}}},
        "security": [{}, {"bearer": []}, {"apiKey": []}],
        "paths": paths,
    }
