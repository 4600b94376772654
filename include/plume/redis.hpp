// plume/redis.hpp — plume's Redis client: RESP2, URLs, a pipelined command
// connection and a SUBSCRIBE-mode connection, both reconnecting on their own.
// Nothing here knows about channels; pubsub::Redis builds on it.
#pragma once

#include "plume/redis/client.hpp"
#include "plume/redis/error.hpp"
#include "plume/redis/resp.hpp"
#include "plume/redis/subscriber.hpp"
#include "plume/redis/url.hpp"
