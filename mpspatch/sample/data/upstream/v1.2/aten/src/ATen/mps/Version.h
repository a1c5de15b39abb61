// Version.h: the miniaten release this header belongs to.

#pragma once

#define MINIATEN_VERSION_MAJOR 1
#define MINIATEN_VERSION_MINOR 2
#define MINIATEN_VERSION_STRING "1.2"
