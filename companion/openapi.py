"""The OpenAPI 3.1 description of every route, served at GET /api/openapi.json.

Written by hand, route by route; a test compares it with the app's URL map so it stays true.
"""

from __future__ import annotations

from typing import Any

from . import __version__
from .groups import MAX_MEMBERS, STRATEGIES
from .audio import MEDIA_TYPES
from .config import (COMPANION_SORTS, MAX_FILTER_TAGS, MAX_SEARCH_LENGTH, MAX_TAG_LENGTH, CompanionLimits,
                     GenerationSettings, InitiativeSettings, VoiceSettings, limits)

JSON = "application/json"
TEXT = {"type": "string"}
INT = {"type": "integer"}
BOOL = {"type": "boolean"}
NUM = {"type": "number"}
STR_LIST = {"type": "array", "items": TEXT}


def obj(required: list[str] | None = None, **properties: Any) -> dict:
    """A JSON object schema."""
    schema: dict = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return schema


def ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def page_of(item: dict) -> dict:
    return obj(["items", "total"], items={"type": "array", "items": item}, total=INT)


GENERATION = obj(**{name: limit.schema() for name, limit in limits(GenerationSettings).items()})
CARD_PROPS = {
    "name": TEXT, "description": TEXT, "personality": TEXT, "scenario": TEXT, "first_mes": TEXT,
    "mes_example": TEXT, "creator_notes": TEXT, "system_prompt": TEXT, "post_history_instructions": TEXT,
    "alternate_greetings": STR_LIST, "tags": STR_LIST, "creator": TEXT, "character_version": TEXT,
    "extensions": {"type": "object"}, "nickname": TEXT, "group_only_greetings": STR_LIST,
    "assets": {"type": ["array", "null"]}, "creation_date": {"type": ["integer", "null"]},
    "modification_date": {"type": ["integer", "null"]}, "source": {"type": ["array", "null"]},
}
INITIATIVE = obj(**{name: limit.schema() for name, limit in limits(InitiativeSettings).items()})
INITIATIVE["properties"]["hours"]["description"] = "'START-END' local hours, 0 to 24 ('22-2' spans midnight)"
COMPANION_INITIATIVE = obj(enabled=BOOL, **{k: v for k, v in INITIATIVE["properties"].items() if k != "check_seconds"})
VOICE_LIMITS = limits(VoiceSettings)
COMPANION_VOICE = obj(voice={"type": ["string", "null"], "maxLength": 200,
                             "description": "a voice of GET /api/voice (null: [voice] voice)"},
                      speed={**VOICE_LIMITS["speed"].schema(), "type": ["number", "null"]})
COMPANION_SETTINGS = {**{name: limit.schema() for name, limit in limits(CompanionLimits).items()},
                      "roleplay": BOOL, "dialogue_tuning": BOOL, "initiative": COMPANION_INITIATIVE,
                      "voice": {**COMPANION_VOICE, "description": "kept in the card as extensions.voice"},
                      "preset_id": {"type": ["integer", "null"], "minimum": 1,
                                    "description": "the generation preset it uses (null: none)"}}
ENTRY_PROPS = {"keys": STR_LIST, "secondary_keys": STR_LIST, "content": TEXT, "comment": TEXT,
               "constant": BOOL, "selective": BOOL, "insertion_order": INT, "enabled": BOOL,
               "position": {"type": "string", "enum": ["before_char", "after_char"]}, "case_sensitive": BOOL}

SCHEMAS = {
    "Error": obj(["error"], error={"anyOf": [obj(["code", "message"], code={"type": ["string", "integer"]}, message=TEXT,
                                                 request_id=TEXT, type=TEXT),
                                             {"type": "string", "description": "Ollama's routes: the message alone"}]}),
    "Message": obj(["id", "ai", "text", "date"], id=INT, ai=BOOL, text=TEXT, date=TEXT),
    "Reply": obj(["id", "ai", "text", "date"], id=INT, ai=BOOL, text=TEXT, date=TEXT,
                 memories={"type": "array", "items": obj(id=INT, text=TEXT, score=NUM, created_at=TEXT)},
                 memory_window={"oneOf": [{"type": "null"}, ref("TimeWindow")]},
                 lore={"type": "array", "items": {"type": "object"}}),
    "TimeWindow": obj(["start", "end", "phrase"], start=TEXT, end=TEXT, phrase=TEXT),
    "CompatMessage": obj(["id", "ai", "text", "date"], id=INT, ai={"type": "string", "enum": ["true", "false"]},
                         text=TEXT, date=TEXT),
    "MessagesJson": obj(["messages"], messages={"type": "array", "items": obj(["ai", "text"], ai=BOOL,
                                                                                text={"type": "string", "minLength": 1},
                                                                                date=TEXT)}),
    "CharacterJson": obj(["name", "description", "first_mes", "mes_example"], name=TEXT, description=TEXT,
                         first_mes=TEXT, mes_example=TEXT),
    "CompanionData": obj(["id", "name", "persona", "example_dialogue", "first_message", "long_term_mem",
                          "short_term_mem", "roleplay", "avatar_path"], id=INT, name=TEXT, persona=TEXT,
                         example_dialogue=TEXT, first_message=TEXT, long_term_mem=INT, short_term_mem=INT,
                         roleplay=INT, dialogue_tuning=INT, avatar_path=TEXT),
    "UserData": obj(["id", "name", "persona"], id=INT, name=TEXT, persona=TEXT),
    "Companion": obj(["id", "name"], id=INT, **CARD_PROPS, **COMPANION_SETTINGS, generation={"type": "object"},
                     active=BOOL, lorebook_ids={"type": "array", "items": INT}, avatar_url=TEXT,
                     created_at=TEXT, updated_at=TEXT,
                     chat_count={"type": "integer", "description": "in lists: how many chats it has"},
                     last_chat_at={"type": ["string", "null"],
                                   "description": "in lists: its newest message but greetings (null: none)"}),
    "Persona": obj(["id", "name", "persona"], id=INT, name=TEXT, persona=TEXT, active=BOOL,
                   avatar_url={"type": ["string", "null"], "description": "null while it has no avatar"},
                   created_at=TEXT, updated_at=TEXT),
    "Preset": obj(["id", "name", "builtin", "settings"], id=INT, name=TEXT, settings=GENERATION,
                  builtin={"type": "boolean", "description": "built in: used and copied, never changed or deleted"},
                  companion_ids={"type": "array", "items": INT, "description": "the companions that use it"},
                  created_at=TEXT, updated_at=TEXT),
    "Lorebook": obj(["id", "name"], id=INT, name=TEXT, description=TEXT, format=TEXT,
                    scan_depth={"type": ["integer", "null"]}, token_budget={"type": ["integer", "null"]},
                    entry_count=INT, companion_ids={"type": "array", "items": INT},
                    entries={"type": "array", "items": ref("LoreEntry")}, created_at=TEXT, updated_at=TEXT),
    "LoreEntry": obj(["index"], index=INT, id={"type": ["integer", "null"]}, **ENTRY_PROPS),
    "Generation": GENERATION,
    "Chat": obj(["id", "companion_id"], id=INT, companion_id=INT, title=TEXT, created_at=TEXT, active=BOOL,
                message_count=INT, last_message_at={"type": ["string", "null"]}, story_so_far=BOOL, story=TEXT,
                members={"type": "array", "items": INT, "description": "the chat's companions, in order"},
                group_id={"type": ["integer", "null"], "description": "a group chat's group"},
                messages={"type": "array"}),
    "ChatMessage": obj(["id", "ai", "text"], id=INT, chat_id=INT, ai=BOOL, text=TEXT, swipes=STR_LIST,
                       swipe_id=INT, greeting=BOOL, date=TEXT,
                       companion_id={"type": ["integer", "null"], "description": "who said it (ai)"},
                       user_id={"type": ["integer", "null"], "description": "which persona said it (not ai)"},
                       initiated={"type": "boolean", "description": "the companion wrote it first, not in reply"}),
    "Memory": obj(["id", "text", "source", "created_at"], id=INT, companion_id=INT, text=TEXT, display_text=TEXT,
                  source=TEXT, document_id={"type": ["integer", "null"]}, chat_id={"type": ["integer", "null"]},
                  first_message_id={"type": ["integer", "null"]}, last_message_id={"type": ["integer", "null"]},
                  created_at=TEXT, score={"type": ["number", "null"]}),
    "Document": obj(["id", "name"], id=INT, companion_id=INT, name=TEXT, media_type=TEXT, size=INT, chunks=INT,
                    created_at=TEXT),
    "CompanionGeneration": obj(["companion_id", "defaults", "companion", "effective"], companion_id=INT,
                               defaults={"type": "object"}, preset_id={"type": ["integer", "null"]},
                               preset={"type": "object"}, companion={"type": "object"},
                               effective={"type": "object", "description": "defaults < preset < companion"}),
    "Config": obj(["model", "generation", "initiative"], model={"type": "object"}, generation={"type": "object"},
                  initiative=INITIATIVE,
                  pending_model={"type": ["object", "null"]}, last_error={"type": ["string", "null"]}),
    "Group": obj(["id", "name", "strategy", "members"], id=INT, name=TEXT, preset_id={"type": ["integer", "null"]},
                 strategy={"type": "string", "enum": list(STRATEGIES)},
                 members={"type": "array", "items": obj(["companion_id"], companion_id=INT, name=TEXT, muted=BOOL,
                                                        talkativeness={"type": ["number", "null"]}, avatar_url=TEXT)},
                 avatar_url=TEXT, active_chat_id={"type": ["integer", "null"]}, active=BOOL,
                 created_at=TEXT, updated_at=TEXT),
    "GroupTurn": obj(["chat_id", "replies"], chat_id=INT, message={"oneOf": [{"type": "null"}, ref("ChatMessage")]},
                     replies={"type": "array", "items": obj(["message"], message=ref("ChatMessage"),
                                                            memories={"type": "array"}, lore={"type": "array"},
                                                            memory_window={"type": ["object", "null"]})}),
    "Status": obj(["version", "data_dir", "model", "embedder", "counts"], version=TEXT, data_dir=TEXT,
                  model={"type": "object"}, embedder={"type": "object"}, counts={"type": "object"}),
}

PLAIN = {"content": {"text/plain": {"schema": TEXT}}}
ERRORS = {
    "400": {"description": "bad input: nothing changed", "content": {JSON: {"schema": ref("Error")},
                                                                     "text/plain": {"schema": TEXT}}},
    "4XX": {"description": "refused (401, 403, 404, 409, 413, 421, 429)",
            "content": {JSON: {"schema": ref("Error")}, "text/plain": {"schema": TEXT}}},
    "503": {"description": "the model is loading or failed to load",
            "content": {JSON: {"schema": ref("Error")}, "text/plain": {"schema": TEXT}}},
}


def ok(schema: dict | None = None, status: str = "200", description: str = "ok", text: bool = False,
       media: str | None = None) -> dict:
    if text:
        return {status: {"description": description, **PLAIN}}
    if media:
        return {status: {"description": description, "content": {media: {"schema": {"type": "string",
                                                                                         "format": "binary"}}}}}
    if schema is None:
        return {status: {"description": description}}
    return {status: {"description": description, "content": {JSON: {"schema": schema}}}}


def op(summary: str, responses: dict, body: dict | None = None, params: list[dict] | None = None,
       raw: str | None = None, optional_body: bool = False, stream: bool | dict = False) -> dict:
    """One operation: summary, request body (JSON, or raw bytes of a media type), responses."""
    operation: dict = {"summary": summary, "responses": {**responses, **ERRORS}}
    if body is not None:
        operation["requestBody"] = {"required": not optional_body, "content": {JSON: {"schema": body}}}
    if raw is not None:
        operation["requestBody"] = {"required": True, "content": {
            raw: {"schema": {"type": "string", "format": "binary"}},
            "multipart/form-data": {"schema": obj(["file"], file={"type": "string", "format": "binary"})}}}
    if params:
        operation["parameters"] = params
    if stream:   # each Server-Sent Event: token pieces, then done (or error); data is JSON text
        schema = stream if isinstance(stream, dict) else TURN_EVENTS
        streamed = operation["responses"].setdefault("200", {"description": "streamed when asked", "content": {}})
        streamed["content"]["text/event-stream"] = {"schema": schema}
    return operation


def path_param(name: str) -> dict:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "integer", "minimum": 0}}


def query(name: str, schema: dict) -> dict:
    return {"name": name, "in": "query", "required": False, "schema": schema}


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


def with_memory(operation: dict) -> dict:
    """An operation that takes the memory opt-in: the header parameter, and the recalled ids on its 200."""
    operation.setdefault("parameters", []).append(MEMORY_PARAM)
    operation["responses"]["200"]["headers"] = RECALLED_HEADERS
    return operation


OPENAI_STREAM = obj(["data"], data=TEXT)
# a streamed reply: token pieces, with "speak": true each sentence's audio ({index, text, format,
# seconds, audio: base64}) in order, then done (or error)
TURN_EVENTS = obj(["event", "data"], event={"type": "string", "enum": ["token", "audio", "done", "error"]}, data=TEXT)
SPEAK = {"type": "boolean", "description": "with stream: each sentence spoken as it is written (audio events); "
                                           "501 without the speak extra"}
GENERATION_SPOKEN = obj(**GENERATION["properties"], stream=BOOL, speak=SPEAK)   # `data: {chunk}` lines, then `data: [DONE]`
KOBOLD_BODY = obj(["prompt"], prompt={"type": "string", "minLength": 1},
                  max_length={"type": "integer", "minimum": 1, "maximum": 32768},
                  max_context_length={"type": "integer", "minimum": 1},
                  rep_pen={"type": "number", "minimum": 0.01, "maximum": 5},
                  temperature={"type": "number", "minimum": 0, "maximum": 5},
                  top_p={"type": "number", "minimum": 0, "maximum": 1},
                  top_k={"type": "integer", "minimum": 0, "maximum": 100000},
                  min_p={"type": "number", "minimum": 0, "maximum": 1},
                  stop_sequence={"type": "array", "items": {"type": "string", "minLength": 1}, "maxItems": 16},
                  sampler_seed={"type": "integer", "minimum": -1, "maximum": 2**31 - 1})
PAGE = [query("limit", {"type": "integer", "minimum": 1, "maximum": 200}),
        query("offset", {"type": "integer", "minimum": 0})]
CHAT = path_param("chat_id")
CID, LID, UID, IDX, PID = (path_param("companion_id"), path_param("lorebook_id"), path_param("user_id"),
                           path_param("index"), path_param("preset_id"))
COMPANION_FILTERS = [
    query("q", {"type": "string", "maxLength": MAX_SEARCH_LENGTH,
                "description": "found (any case) in the name, nickname, description or creator notes"}),
    {**query("tags", {"type": "array", "maxItems": MAX_FILTER_TAGS,
                      "items": {"type": "string", "minLength": 1, "maxLength": MAX_TAG_LENGTH, "pattern": "^[^,]*$"}}),
     "style": "form", "explode": False, "description": "comma-separated: companions that have all of them (any case)"},
    query("sort", {"type": "string", "enum": list(COMPANION_SORTS)}),
    query("order", {"type": "string", "enum": ["asc", "desc"]})]
GID = path_param("group_id")
GROUP_BODY = obj(["name", "members"], name={"type": "string", "minLength": 1, "maxLength": 200},
                 preset_id={"type": ["integer", "null"], "minimum": 1},
                 strategy={"type": "string", "enum": list(STRATEGIES)},
                 members={"type": "array", "minItems": 2, "maxItems": MAX_MEMBERS, "items": {"oneOf": [
                     INT, obj(["companion_id"], companion_id=INT, muted=BOOL,
                              talkativeness={"type": ["number", "null"], "minimum": 0, "maximum": 1})]}})
GROUP_EVENTS = obj(["event", "data"], event={"type": "string", "enum": ["message", "speaker", "token", "audio",
                                                                        "reply", "done", "error"]}, data=TEXT)


def change(field: str, schema: dict, sentence: str) -> dict:
    return {"post": op(f"Change {field} (AI Companion API)", ok(text=True, description=sentence),
                       body=obj([field], **{field: schema}))}


PATHS: dict[str, dict] = {
    "/": {"get": op("The web page", {"200": {"description": "HTML", "content": {"text/html": {"schema": TEXT}}}})},
    "/assets/avatar.png": {"get": op("The active companion's avatar", ok(media="image/png"))},
    # the AI Companion API
    "/api/prompt": {"post": op("Send a message; the reply (JSON, or SSE when asked)", ok(ref("Reply")),
                               body={**obj(["prompt"], prompt={"type": "string", "minLength": 1}, stream=BOOL),
                                     "properties": {**GENERATION["properties"], "prompt": {"type": "string", "minLength": 1},
                                                    "stream": BOOL, "speak": SPEAK}}, stream=True)},
    "/api/regenerate_message": {
        method: op("Generate the last reply again", ok(ref("Reply")), body=GENERATION_SPOKEN, optional_body=True,
                   stream=True)
        for method in ("get", "post")},
    "/api/messages": {"get": op("The active chat's messages, oldest first",
                                ok({"type": "array", "items": ref("CompatMessage")}))},
    "/api/editMessage": {"post": op("Edit a message", ok(text=True, description="Removed message"),
                                    body=obj(["new_text", "id"], new_text=TEXT, id=INT))},
    "/api/removeMessage": {"post": op("Remove a message", ok(text=True, description="Removed message"),
                                      body=obj(["id"], id=INT))},
    "/api/clearMessages": {"get": op("Clear the chat log", ok(text=True, description="Chat log cleared"))},
    "/api/companionData": {"get": op("The active companion", ok(ref("CompanionData")))},
    "/api/userData": {"get": op("The active user persona", ok(ref("UserData")))},
    "/api/change/firstMessage": change("first_message", TEXT, "Changed first message"),
    "/api/change/companionName": change("companion_name", TEXT, "Changed companion name"),
    "/api/change/companionPersona": change("companion_persona", TEXT, "Changed companion persona"),
    "/api/change/companionExampleDialogue": change("example_dialogue", TEXT, "Changed companion example dialogue"),
    "/api/change/longTermMemory": change("limit", INT, "Changed long term memory limit for ai"),
    "/api/change/shortTermMemory": change("limit", INT, "Changed short term memory limit for ai"),
    "/api/change/roleplay": change("enable", BOOL, "Enabled roleplay / Disabled roleplay"),
    "/api/change/dialogue_tuning": change("enable", BOOL, "Enabled dialogue tuning / Disabled dialogue tuning"),
    "/api/change/companionData": {"post": op(
        "Change the active companion", ok(text=True, description="Data of your AI companion has been changed"),
        body=obj(["name", "persona", "example_dialogue", "first_message", "long_term_mem", "short_term_mem",
                  "roleplay"], id=INT, name=TEXT, persona=TEXT, example_dialogue=TEXT, first_message=TEXT,
                 long_term_mem=INT, short_term_mem=INT, roleplay=BOOL))},
    "/api/change/userName": change("user_name", TEXT, "Changed user name"),
    "/api/change/userPersona": change("user_persona", TEXT, "Changed user persona"),
    "/api/change/userData": {"post": op("Change the active user persona",
                                        ok(text=True, description="Data of user has been changed"),
                                        body=obj(["name", "persona"], id=INT, name=TEXT, persona=TEXT))},
    "/api/change/companionAvatar": {"post": op("Change the avatar (raw image body)",
                                               ok(text=True, description="Changed avatar of your ai companion"),
                                               raw="image/png")},
    "/api/addData": {"post": op("Add to long-term memory",
                                ok(text=True, description="Added custom data to AI long term memory"),
                                body=obj(["text"], text=TEXT))},
    "/api/erase/longTermMemory": {"get": op("Erase long-term memory",
                                            ok(text=True, description="Erased AI's long term memory"))},
    "/api/import/characterJson": {"post": op("Replace the active companion from character JSON",
                                             ok(text=True, description="Data of your ai companion has been changed"),
                                             body=ref("CharacterJson"))},
    "/api/import/characterCard": {"post": op("Replace the active companion from a card (raw PNG)",
                                             ok(text=True, description="Data of your ai companion has been changed"),
                                             raw="image/png")},
    "/api/import/messagesJson": {"post": op("Import messages into short- and long-term memory",
                                            ok(text=True, description="Imported messages to your ai companion memory"),
                                            body=ref("MessagesJson"))},
    "/api/messagesJson": {"get": op("Export the active chat", ok(ref("MessagesJson")))},
    "/api/characterJson": {"get": op("The active companion as character JSON", ok(ref("CharacterJson")))},
    "/api/saveTunedDialogue": {"post": op("Save the last exchange as a tuning example",
                                          ok(text=True, description="Saved messages as tuned dialogue"))},
    "/api/clearTuningMessages": {"get": op("Erase tuning examples",
                                           ok(text=True, description="Tuning dialogue messages erased"))},
    # status, generation, models
    "/api/status": {"get": op("Version, model and embedder state, counts", ok(ref("Status")))},
    "/api/openapi.json": {"get": op("This document", ok({"type": "object"}))},
    "/api/abort": {"post": op("Stop the running generation", ok(obj(["aborted"], aborted=BOOL)))},
    "/api/models": {"get": op("GGUF models the daemon can use", ok(page_of({"type": "object"})))},
    "/api/config": {"get": op("Model and generation settings", ok(ref("Config"))),
                    "put": op("Change model and generation settings",
                              {**ok(ref("Config")), **ok(ref("Config"), "202", "a new model is loading")},
                              body=obj(model={"type": "object"}, generation=GENERATION, initiative=INITIATIVE))},
    "/api/events": {"get": op("Live events (Server-Sent Events): messages, chats, companions, memories, generations, "
                              "model state; Last-Event-ID replays what was missed, or one 'resync'",
                              {"200": {"description": "hello, then id/event/data blocks; comment lines as heartbeats",
                                       "content": {"text/event-stream": {"schema": obj(
                                           ["event", "data"], event=TEXT, data=TEXT, id=TEXT)}}},
                               "503": {"description": "every event stream slot is taken ([server] max_event_streams)"}},
                              params=[query("last_event_id", INT)])},
    # companions, personas, chats
    "/api/companions": {"get": op("Companions matching q and all tags, sorted", ok(page_of(ref("Companion"))),
                                  params=PAGE + COMPANION_FILTERS),
                        "post": op("Create a companion", ok(ref("Companion"), "201"),
                                   body=obj(["name"], **CARD_PROPS, **COMPANION_SETTINGS))},
    "/api/companions/import": {"post": op("A new companion from a card file", ok(ref("Companion"), "201"),
                                          raw="application/octet-stream")},
    "/api/companions/{companion_id}": {
        "get": op("A companion", ok(ref("Companion")), params=[CID]),
        "patch": op("Change a companion", ok(ref("Companion")), params=[CID],
                    body=obj(**CARD_PROPS, **COMPANION_SETTINGS)),
        "delete": op("Delete a companion with its chats and memories", ok(None, "204"), params=[CID])},
    "/api/companions/{companion_id}/activate": {"post": op("Make a companion the active one",
                                                           ok(ref("Companion")), params=[CID])},
    "/api/companions/{companion_id}/avatar": {
        "get": op("A companion's avatar", ok(media="image/png"),
                  params=[CID, query("size", {"type": "string", "enum": ["full", "thumb"]})]),
        "put": op("Change a companion's avatar", ok(ref("Companion")), params=[CID], raw="image/png")},
    "/api/companions/{companion_id}/card.json": {"get": op("The companion as a V3 card", ok({"type": "object"}),
                                                           params=[CID])},
    "/api/companions/{companion_id}/card.png": {"get": op("The avatar with the card in ccv3 and chara",
                                                          ok(media="image/png"), params=[CID])},
    "/api/companions/{companion_id}/generation": {
        "get": op("A companion's generation settings", ok(ref("CompanionGeneration")), params=[CID]),
        "patch": op("Change a companion's generation settings (null removes one)", ok(ref("CompanionGeneration")),
                    params=[CID], body=GENERATION)},
    "/api/companions/{companion_id}/lorebooks": {"post": op("Attach a lorebook", ok(ref("Lorebook")), params=[CID],
                                                            body=obj(["lorebook_id"], lorebook_id=INT))},
    "/api/companions/{companion_id}/lorebooks/{lorebook_id}": {"delete": op("Detach a lorebook", ok(None, "204"),
                                                                            params=[CID, LID])},
    "/api/personas": {"get": op("List personas", ok(page_of(ref("Persona"))), params=PAGE),
                      "post": op("Create a persona", ok(ref("Persona"), "201"),
                                 body=obj(["name"], name=TEXT, persona=TEXT))},
    "/api/personas/{user_id}": {
        "get": op("A persona", ok(ref("Persona")), params=[UID]),
        "patch": op("Change a persona", ok(ref("Persona")), params=[UID], body=obj(name=TEXT, persona=TEXT)),
        "delete": op("Delete a persona", ok(None, "204"), params=[UID])},
    "/api/personas/{user_id}/activate": {"post": op("Make a persona the active one", ok(ref("Persona")),
                                                    params=[UID])},
    "/api/personas/{user_id}/avatar": {
        "get": op("A persona's avatar (the default picture without one)", ok(media="image/png"),
                  params=[UID, query("size", {"type": "string", "enum": ["full", "thumb"]})]),
        "put": op("Change a persona's avatar", ok(ref("Persona")), params=[UID], raw="image/png"),
        "delete": op("Remove a persona's avatar", ok(ref("Persona")), params=[UID])},
    # generation presets
    "/api/presets": {
        "get": op("Generation presets, the built-in ones first", ok(page_of(ref("Preset"))), params=PAGE),
        "post": op("Create a preset (copy_of: start from another preset's settings)", ok(ref("Preset"), "201"),
                   body=obj(["name"], name=TEXT, settings=GENERATION, copy_of={"type": "integer", "minimum": 1}))},
    "/api/presets/import": {"post": op(
        "A SillyTavern text-generation preset (JSON) as a new preset; keys not used are kept for export and "
        "listed in ignored", ok({"allOf": [ref("Preset"), obj(ignored=STR_LIST)]}, "201"), raw=JSON,
        params=[query("name", TEXT)])},
    "/api/presets/{preset_id}": {
        "get": op("A preset", ok(ref("Preset")), params=[PID]),
        "patch": op("Rename a preset or change its settings (null removes one); 409 for a built-in one",
                    ok(ref("Preset")), params=[PID], body=obj(name=TEXT, settings=GENERATION)),
        "delete": op("Delete a preset (its companions then use none); 409 for a built-in one", ok(None, "204"),
                     params=[PID])},
    "/api/presets/{preset_id}/export": {"get": op("A preset as SillyTavern text-generation preset JSON",
                                                  ok({"type": "object"}), params=[PID])},
    "/api/chats": {
        "get": op("Chats, newest first", ok(page_of(ref("Chat"))),
                  params=PAGE + [query("companion_id", {"type": "integer", "minimum": 1})]),
        "post": op("A new chat opening with a chosen greeting", ok(ref("Chat"), "201"),
                   body=obj(companion_id=INT, title=TEXT, greeting_index=INT))},
    "/api/chats/import": {"post": op("A SillyTavern .jsonl chat (or our JSON) into a new chat", ok(ref("Chat"), "201"),
                                     raw="application/jsonl")},
    "/api/chats/{chat_id}": {
        "get": op("A chat", ok(ref("Chat")), params=[CHAT]),
        "patch": op("Rename a chat and/or turn its story so far on or off", ok(ref("Chat")), params=[CHAT],
                    body=obj(title=TEXT, story_so_far=BOOL)),
        "delete": op("Delete a chat with its messages and their memories", ok(None, "204"), params=[CHAT])},
    "/api/chats/{chat_id}/activate": {"post": op("Make a chat (and its companion) the active one", ok(ref("Chat")),
                                                 params=[CHAT])},
    "/api/chats/{chat_id}/messages": {"get": op("A chat's messages, oldest first", ok(page_of(ref("ChatMessage"))),
                                                params=[CHAT] + PAGE)},
    "/api/chats/{chat_id}/export": {"get": op(
        "A chat as json, SillyTavern jsonl, txt or csv",
        {"200": {"description": "the file", "content": {
            "application/json": {"schema": {"type": "object"}},
            **{t: {"schema": TEXT} for t in ("application/jsonl", "text/plain", "text/csv")}}}},
        params=[CHAT, query("format", {"type": "string", "enum": ["json", "jsonl", "txt", "csv"]})])},
    # groups
    "/api/groups": {"get": op("List groups", ok(page_of(ref("Group"))), params=PAGE),
                    "post": op("Create a group of two or more companions, with its first chat", ok(ref("Group"), "201"),
                               body=GROUP_BODY)},
    "/api/groups/{group_id}": {
        "get": op("A group", ok(ref("Group")), params=[GID]),
        "patch": op("Change a group's name, strategy or members", ok(ref("Group")), params=[GID],
                    body=obj(name=TEXT, strategy=GROUP_BODY["properties"]["strategy"],
                             preset_id=GROUP_BODY["properties"]["preset_id"],
                             members=GROUP_BODY["properties"]["members"])),
        "delete": op("Delete a group with its chats and what its members remember of them", ok(None, "204"),
                     params=[GID])},
    "/api/groups/{group_id}/activate": {"post": op("Make a group the one the page talks to", ok(ref("Group")),
                                                   params=[GID])},
    "/api/groups/{group_id}/avatar": {"get": op("A collage of the members' avatars", ok(media="image/png"),
                                                params=[GID])},
    "/api/groups/{group_id}/chats": {
        "get": op("A group's chats, newest first", ok(page_of(ref("Chat"))), params=[GID] + PAGE),
        "post": op("A new chat of a group (made its active chat)", ok(ref("Chat"), "201"), params=[GID],
                   body=obj(title=TEXT), optional_body=True)},
    "/api/groups/{group_id}/chats/import": {"post": op(
        "A SillyTavern group chat (.jsonl, each message named) into a new chat of the group", ok(ref("Chat"), "201"),
        params=[GID], raw="application/jsonl")},
    "/api/groups/{group_id}/turn": {"post": op(
        "The user writes (or not), then members reply one after another by the group's strategy "
        "(SSE when asked: message, speaker, token, reply..., done)", ok(ref("GroupTurn")), params=[GID],
        body=obj(text={"type": "string", "minLength": 1}, chat_id=INT, stream=BOOL, speak=SPEAK,
                 **GENERATION["properties"]), stream=GROUP_EVENTS)},
    "/api/groups/{group_id}/reply": {"post": op(
        "One member speaks now (\"let X speak\")", ok(ref("GroupTurn")), params=[GID],
        body=obj(["companion_id"], companion_id=INT, chat_id=INT, stream=BOOL, speak=SPEAK,
                 **GENERATION["properties"]), stream=GROUP_EVENTS)},
    "/api/messages/{message_id}": {
        "patch": op("Edit a message (its chosen swipe)", ok(ref("ChatMessage")), params=[path_param("message_id")],
                    body=obj(["text"], text={"type": "string", "minLength": 1})),
        "delete": op("Delete a message and its memory", ok(None, "204"), params=[path_param("message_id")])},
    "/api/messages/{message_id}/swipes": {"post": op(
        "Generate another alternative of a chat's last reply", ok(ref("ChatMessage"), "201"),
        params=[path_param("message_id")], body=GENERATION_SPOKEN, optional_body=True, stream=True)},
    "/api/messages/{message_id}/speech": {"get": op(
        "A stored message spoken in its companion's voice (cached on disk; 501 without the speak extra)",
        {"200": {"description": "audio", "content": {m: {"schema": {"type": "string", "format": "binary"}}
                                                     for m in dict.fromkeys(MEDIA_TYPES.values())}}},
        params=[path_param("message_id"), query("format", {"type": "string", "enum": list(MEDIA_TYPES)})])},
    "/api/voice": {"get": op("Which voice parts are installed (speak, listen), the voices and the limits",
                             ok(obj(["speak", "listen", "limits"], speak={"type": "object"}, listen={"type": "object"},
                                    limits={"type": "object"})))},
    "/v1/audio/speech": {"post": op(
        "OpenAI: text spoken (Piper; 501 without the speak extra)",
        {"200": {"description": "audio", "content": {m: {"schema": {"type": "string", "format": "binary"}}
                                                     for m in dict.fromkeys(MEDIA_TYPES.values())}}},
        body=obj(["input"], model=TEXT, input={"type": "string", "minLength": 1,
                                               "maxLength": VOICE_LIMITS["max_text_chars"].le},
                 voice={**TEXT, "description": "a voice of GET /api/voice; others (alloy...) speak in the default"},
                 response_format={"type": "string", "enum": list(MEDIA_TYPES)},
                 speed=VOICE_LIMITS["speed"].schema(), instructions=TEXT))},
    "/v1/audio/transcriptions": {"post": {**op(
        "OpenAI: what is said in a recording (faster-whisper; 501 without the listen extra; 400 for audio that "
        "cannot be read, is silent or too long)",
        ok(obj(["text"], text=TEXT, language=TEXT, duration=NUM))),
        "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": obj(
            ["file"], file={"type": "string", "format": "binary"}, model=TEXT, language=TEXT,
            response_format={"type": "string", "enum": ["json", "text", "verbose_json"]}, prompt=TEXT,
            temperature=NUM)}}}}},
    "/api/messages/{message_id}/swipe": {"put": op("Choose one of a reply's swipes", ok(ref("ChatMessage")),
                                                   params=[path_param("message_id")],
                                                   body=obj(["index"], index={"type": "integer", "minimum": 0}))},
    "/api/search": {"get": op("Full-text search over all messages", ok(page_of({"type": "object"})),
                              params=PAGE + [{"name": "q", "in": "query", "required": True, "schema": TEXT},
                                             query("companion_id", {"type": "integer", "minimum": 1}),
                                             query("chat_id", {"type": "integer", "minimum": 1})])},
    # long-term memory
    "/api/memories": {
        "get": op("Memories, newest first, or ranked by q (with the time window q names)",
                  ok(obj(["items", "total"], items={"type": "array", "items": ref("Memory")}, total=INT,
                         window={"oneOf": [{"type": "null"}, ref("TimeWindow")]})),
                  params=PAGE + [query("companion_id", {"type": "integer", "minimum": 1}), query("q", TEXT)]),
        "post": op("Add a memory (made now, or at created_at)", ok(ref("Memory"), "201"),
                   body=obj(["text"], text=TEXT, companion_id=INT, created_at=TEXT)),
        "delete": op("Forget all of a companion's memories", ok(obj(["deleted"], deleted=INT)),
                     params=[query("companion_id", {"type": "integer", "minimum": 1})])},
    "/api/memories/{memory_id}": {
        "patch": op("Change a memory's text (embedded again)", ok(ref("Memory")), params=[path_param("memory_id")],
                    body=obj(["text"], text=TEXT)),
        "delete": op("Delete a memory", ok(None, "204"), params=[path_param("memory_id")])},
    "/api/memories/documents": {
        "get": op("Documents in memory", ok(page_of(ref("Document"))),
                  params=PAGE + [query("companion_id", {"type": "integer", "minimum": 1})]),
        "post": op("A document into memory, in overlapping chunks", ok(ref("Document"), "201"), raw="text/plain")},
    "/api/memories/documents/{document_id}": {"delete": op("Forget a document and all its chunks",
                                                           ok(None, "204"), params=[path_param("document_id")])},
    "/api/messages/{message_id}/context": {"get": op("The memories and lore a reply used", ok({"type": "object"}),
                                                     params=[path_param("message_id")])},
    # OpenAI-compatible
    "/v1/models": {"get": op("Models: the serving one, the other model files (named in a request, one loads "
                             "and serves), 'companion' and 'companion:<id>'",
                             ok(obj(["object", "data"], object=TEXT, data={"type": "array"})))},
    "/v1/chat/completions": {"post": with_memory(op(
        "Chat completion: the plain model (omitted, the serving model's name, or another model file of /v1/models, "
        "which loads first), or the companion (model 'companion' / 'companion:<id>'); any other model is a 404 "
        "with code model_not_found. Model 'memory/<id>' or 'memory/<id>/<model>' (or the X-Companion-Memory "
        "header): the client's own messages to the plain model, with companion <id>'s long-term memory put in "
        "and the exchange remembered",
        ok(obj(["id", "object", "choices"], id=TEXT, object=TEXT, created=INT, model=TEXT,
               choices={"type": "array"}, usage={"type": "object"})),
        body=obj(["messages"], model=TEXT, stream=BOOL, messages={"type": "array", "minItems": 1, "items": obj(
            ["role"], role={"type": "string", "enum": ["system", "user", "assistant", "developer", "tool"]},
            content=TEXT)}, **{k: v for k, v in GENERATION["properties"].items()},
            presence_penalty=NUM, frequency_penalty=NUM), stream=OPENAI_STREAM))},
    "/v1/completions": {"post": op(
        "Text completion of a prompt by the plain model (model names as for chat completions; a 404 for an "
        "unknown one)",
        ok(obj(["id", "object", "choices"], id=TEXT, object=TEXT, created=INT, model=TEXT,
               choices={"type": "array"}, usage={"type": "object"})),
        body=obj(["prompt"], model=TEXT, prompt={"type": "string", "minLength": 1}, stream=BOOL,
                 suffix={"type": "string", "description": "Fill in the middle: the text after the gap. Only for "
                         "models with fill-in-the-middle tokens (see /api/models); 400 otherwise."},
                 **{k: v for k, v in GENERATION["properties"].items()}, presence_penalty=NUM,
                 frequency_penalty=NUM), stream=OPENAI_STREAM)},
    "/v1/embeddings": {"post": op(
        "Embeddings by the daemon's embedder", ok(obj(["object", "data"], object=TEXT, model=TEXT,
                                                        data={"type": "array"}, usage={"type": "object"})),
        body=obj(["input"], model=TEXT, input={"anyOf": [TEXT, STR_LIST]}))},
    # llama.cpp server
    "/health": {"get": op("llama.cpp: 200 once the model is ready (503 while it loads)",
                          ok(obj(["status"], status=TEXT)))},
    "/props": {"get": op("llama.cpp: the model, its context size and the default generation settings",
                         ok(obj(["default_generation_settings"], default_generation_settings={"type": "object"},
                                total_slots=INT, model_path=TEXT, chat_template=TEXT, build_info=TEXT)))},
    "/completion": {"post": op(
        "llama.cpp: completion of a prompt by the plain model (nothing stored)",
        ok(obj(["content", "stop"], content=TEXT, stop=BOOL, model=TEXT, tokens_predicted=INT, tokens_evaluated=INT,
               stop_type=TEXT, timings={"type": "object"})),
        body=obj(["prompt"], prompt={"type": "string", "minLength": 1}, stream=BOOL,
                 n_predict={"type": "integer", "minimum": -1, "maximum": GENERATION["properties"]["max_tokens"]["maximum"]},
                 **{k: v for k, v in GENERATION["properties"].items() if k in ("temperature", "top_k", "top_p", "min_p",
                                                                            "repeat_penalty", "stop", "seed")}),
        stream=obj(["data"], data=TEXT))},
    "/tokenize": {"post": op("llama.cpp: the model's tokens of a text", ok(obj(["tokens"], tokens={"type": "array"})),
                             body=obj(["content"], content=TEXT, add_special=BOOL, with_pieces=BOOL))},
    "/detokenize": {"post": op("llama.cpp: the text of token ids", ok(obj(["content"], content=TEXT)),
                               body=obj(["tokens"], tokens={"type": "array", "items": {"type": "integer", "minimum": 0}}))},
    # Ollama
    "/api/version": {"get": op("Ollama: the API version these routes follow", ok(obj(["version"], version=TEXT)))},
    "/api/tags": {"get": op("Ollama: the serving model, the other model files (<file stem>:latest; named in a "
                            "request, one loads and serves) and one companion/<id> per companion",
                            ok(obj(["models"], models={"type": "array"})))},
    "/api/show": {"post": op("Ollama: a model's template, parameters and header facts (a model file named is "
                             "described, not loaded; 404 for an unknown name)",
                             ok(obj(["template"], modelfile=TEXT, parameters=TEXT, template=TEXT,
                                    details={"type": "object"}, model_info={"type": "object"})),
                             body=obj([], model=TEXT, name=TEXT))},
    "/api/ps": {"get": op("Ollama: the model in memory", ok(obj(["models"], models={"type": "array"})))},
    "/api/generate": {"post": op(
        "Ollama: completion of a prompt (NDJSON stream unless stream is false; nothing stored). The model: "
        "omitted or the serving one, another model file of /api/tags (loaded first; with an empty prompt, only "
        "loaded); an unknown name is a 404, {error: \"model 'NAME' not found\"}",
        {"200": {"description": "the reply, or newline-delimited JSON objects ending with done: true",
                 "content": {JSON: {"schema": {"type": "object"}}, "application/x-ndjson": {"schema": TEXT}}}},
        body=obj([], model=TEXT, prompt=TEXT, system=TEXT, raw=BOOL, stream=BOOL, keep_alive={},
                 options={"type": "object"}))},
    "/api/chat": {"post": with_memory(op(
        "Ollama: chat with the model (named as for /api/generate: another model file loads first, an unknown "
        "name is a 404), or with a companion (model companion/<id>: its memory and chat). Model memory/<id> or "
        "memory/<id>/<model> (or the X-Companion-Memory header): the client's own messages to the model, with "
        "companion <id>'s long-term memory put in and the exchange remembered",
        {"200": {"description": "the reply, or newline-delimited JSON objects ending with done: true",
                 "content": {JSON: {"schema": {"type": "object"}}, "application/x-ndjson": {"schema": TEXT}}}},
        body=obj(["messages"], model=TEXT, stream=BOOL, keep_alive={}, options={"type": "object"},
                 messages={"type": "array", "minItems": 1, "items": obj(
                     ["role"], role={"type": "string", "enum": ["system", "user", "assistant", "developer", "tool"]},
                     content=TEXT)})))},
    "/api/embed": {"post": op("Ollama: embeddings by the daemon's embedder (model: omitted, the embedder's name, "
                              "all-minilm for the bundled one, or the serving model's; 400 for another model file, "
                              "404 for an unknown name)",
                              ok(obj(["embeddings"], model=TEXT, embeddings={"type": "array"}, total_duration=INT,
                                     load_duration=INT, prompt_eval_count=INT)),
                              body=obj(["input"], model=TEXT, input={"anyOf": [TEXT, STR_LIST]}))},
    "/api/embeddings": {"post": op("Ollama (older): one embedding (model names as for /api/embed)",
                                   ok(obj(["embedding"], embedding={"type": "array"})),
                                   body=obj(["prompt"], model=TEXT, prompt={"type": "string", "minLength": 1}))},
    "/api/pull": {"post": op(
        "Ollama: download a GGUF into the data dir's models/ (hf.co/OWNER/REPO[:QUANT], OWNER/REPO/FILE.gguf or an "
        "https:// URL); NDJSON progress unless stream is false; 403 when [model] allow_pull is false",
        {"200": {"description": "{status: success}, or newline-delimited progress objects ending with "
                                "{status: success} (or {error})",
                 "content": {JSON: {"schema": obj(["status"], status=TEXT)}, "application/x-ndjson": {"schema": TEXT}}}},
        body=obj([], model=TEXT, name=TEXT, stream=BOOL, insecure=BOOL))},
    "/api/delete": {"delete": op(
        "Ollama: delete a model file from the data dir's models/ (not the bundled one, not the one serving)",
        ok(None), body=obj([], model=TEXT, name=TEXT))},
    # KoboldCpp-compatible
    "/api/v1/model": {"get": op("KoboldCpp: the model", ok(obj(["result"], result=TEXT)))},
    "/api/v1/info/version": {"get": op("KoboldCpp: API version", ok(obj(["result"], result=TEXT)))},
    "/api/extra/version": {"get": op("KoboldCpp: server version", ok(obj(["result", "version"], result=TEXT,
                                                                        version=TEXT)))},
    "/api/v1/generate": {"post": op("KoboldCpp: generate", ok(obj(["results"], results={"type": "array"})),
                                    body=KOBOLD_BODY)},
    "/api/extra/generate/stream": {"post": op("KoboldCpp: generate, streamed (event: message, {token})",
                                              {"200": {"description": "SSE", "content": {"text/event-stream": {
                                                  "schema": obj(["data"], data=TEXT)}}}}, body=KOBOLD_BODY)},
    "/api/extra/abort": {"post": op("KoboldCpp: stop the running generation", ok(obj(["success"], success=TEXT)))},
    # lorebooks
    "/api/lorebooks": {"get": op("List lorebooks", ok(page_of(ref("Lorebook"))), params=PAGE),
                       "post": op("Create a lorebook", ok(ref("Lorebook"), "201"),
                                  body=obj(name=TEXT, description=TEXT, scan_depth=INT, token_budget=INT,
                                           entries={"type": "array", "items": obj(**ENTRY_PROPS)}))},
    "/api/lorebooks/import": {"post": op("Import a lorebook file", ok(ref("Lorebook"), "201"), raw=JSON)},
    "/api/lorebooks/{lorebook_id}": {
        "get": op("A lorebook with its entries", ok(ref("Lorebook")), params=[LID]),
        "patch": op("Change a lorebook", ok(ref("Lorebook")), params=[LID],
                    body=obj(name=TEXT, description=TEXT, scan_depth=INT, token_budget=INT)),
        "delete": op("Delete a lorebook", ok(None, "204"), params=[LID])},
    "/api/lorebooks/{lorebook_id}/export": {"get": op(
        "Export a lorebook", ok({"type": "object"}),
        params=[LID, query("format", {"type": "string", "enum": ["character_book", "sillytavern", "lorebook_v3"]})])},
    "/api/lorebooks/{lorebook_id}/entries": {"post": op("Add an entry", ok(ref("LoreEntry"), "201"), params=[LID],
                                                        body=obj(**ENTRY_PROPS))},
    "/api/lorebooks/{lorebook_id}/entries/{index}": {
        "patch": op("Change an entry", ok(ref("LoreEntry")), params=[LID, IDX], body=obj(**ENTRY_PROPS)),
        "delete": op("Delete an entry", ok(None, "204"), params=[LID, IDX])},
}


def openapi_document() -> dict:
    """The whole OpenAPI 3.1 document."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "companion", "version": __version__,
                 "description": "A local AI companion daemon: the AI Companion API and a modern REST API."},
        "components": {"schemas": SCHEMAS, "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer"},
            "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}}},
        "security": [{}, {"bearer": []}, {"apiKey": []}],
        "paths": PATHS,
    }
