package controllers

import "k8s.io/apimachinery/pkg/api/equality"

func equalityDeep(a, b any) bool { return equality.Semantic.DeepEqual(a, b) }
