// plume/presence.hpp — Presence in one include: the replicated Tracker,
// and Presence with phoenix.js payload shapes and hooks.
#pragma once

#include "plume/presence/entry.hpp"
#include "plume/presence/error.hpp"
#include "plume/presence/presence.hpp"
#include "plume/presence/tracker.hpp"
