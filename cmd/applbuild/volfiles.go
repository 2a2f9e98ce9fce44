package main

import "github.com/spf13/cobra"

func newVolfilesCmd(g *globals) *cobra.Command { return &cobra.Command{Use: "volfiles", Hidden: true} }
