#!/bin/sh
exec "$(dirname "$0")/chain.sh" tcp
