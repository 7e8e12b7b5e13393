//go:build !modernc && !mattn && !ncruces

package main

const driverName = "none" // baseline: database/sql only
