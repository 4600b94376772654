// plume/pubsub.hpp — PubSub in one include.
#pragma once

#include "plume/pubsub/local.hpp"
#include "plume/pubsub/message.hpp"
#include "plume/pubsub/pubsub.hpp"
